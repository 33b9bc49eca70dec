//! How long a carrier takes to complete each operation, learned from the
//! changes this replica saw complete, so the first read of an accepted
//! change comes when it is likely done. Under carrier limits every read
//! spends the budget changes need: a read that cannot find the change done
//! is a call wasted (China Telecom: 3 calls per card with an inline read and
//! an immediate follow-up read, 2 without them).
//!
//! The first read waits 0.9 x the median of the last [`SAMPLES`] completion
//! times of that operation (real time, from acceptance to the read that saw
//! it final), within `[GSL_FIRST_POLL_MIN_MS, GSL_FIRST_POLL_MAX_MS]`; with
//! no samples yet, one poll interval. The 0.9 lets the figure follow a
//! carrier that gets faster (a read only ever sees a completion after it
//! happened).

use gsl_domain::OperationKind;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

/// Completion times kept per operation.
pub const SAMPLES: usize = 32;

pub struct CompletionTimes {
    samples: Mutex<HashMap<OperationKind, VecDeque<Duration>>>,
    min: Duration,
    max: Duration,
    default: Duration,
}

impl CompletionTimes {
    pub fn new(min: Duration, max: Duration, default: Duration) -> CompletionTimes {
        CompletionTimes {
            samples: Mutex::default(),
            min,
            max: max.max(min),
            default,
        }
    }

    /// A change of `kind` was seen final `took` after it was accepted.
    pub fn observe(&self, kind: OperationKind, took: Duration) {
        let mut m = self.samples.lock().expect("completion samples");
        let q = m.entry(kind).or_default();
        if q.len() == SAMPLES {
            q.pop_front();
        }
        q.push_back(took);
    }

    /// How long after acceptance the first read of a `kind` change goes.
    pub fn first_read(&self, kind: OperationKind) -> Duration {
        let m = self.samples.lock().expect("completion samples");
        let learned = m.get(&kind).filter(|q| !q.is_empty()).map(|q| {
            let mut v: Vec<Duration> = q.iter().copied().collect();
            v.sort_unstable();
            v[v.len() / 2].mul_f64(0.9)
        });
        learned.unwrap_or(self.default).clamp(self.min, self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_the_median_within_bounds() {
        let ms = Duration::from_millis;
        let c = CompletionTimes::new(ms(100), ms(10_000), ms(5000));
        assert_eq!(
            c.first_read(OperationKind::Stop),
            ms(5000),
            "no samples: the default"
        );
        for t in [2000, 2100, 1900, 8000, 2000] {
            c.observe(OperationKind::Stop, ms(t));
        }
        assert_eq!(
            c.first_read(OperationKind::Stop),
            ms(1800),
            "0.9 x median 2000"
        );
        assert_eq!(
            c.first_read(OperationKind::Resume),
            ms(5000),
            "per operation"
        );
        for _ in 0..SAMPLES {
            c.observe(OperationKind::Resume, ms(10));
        }
        assert_eq!(
            c.first_read(OperationKind::Resume),
            ms(100),
            "never under the minimum"
        );
        for _ in 0..SAMPLES {
            c.observe(OperationKind::Resume, ms(60_000));
        }
        assert_eq!(
            c.first_read(OperationKind::Resume),
            ms(10_000),
            "only recent samples; the maximum"
        );
    }
}

//! # gsl-backoff: one exponential backoff
//!
//! Every retry loop of the project (the carrier request stack, redelivery
//! of work items, reports to the gateway, the gateway's own retries) waits
//! by one [`Backoff`]: `min x 2^(attempt-1)`, capped at `max`, plus up to
//! `jitter` of that at random (so replicas retrying together spread out).
//! It is checked when built ([`Backoff::try_new`]), so a wrong setting fails
//! at start, not in the middle of an outage. Modelled on linkerd2-proxy's
//! `exp-backoff`.
//!
//! ## Layout
//!
//! One type, in this file.
#![forbid(unsafe_code)]

use std::time::Duration;

/// An exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    jitter: f64,
}

/// Why a backoff cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidBackoff {
    #[error("the minimum delay must not be zero")]
    ZeroMin,
    #[error("the maximum delay must not be less than the minimum")]
    MaxBelowMin,
    #[error("jitter must be a finite share between 0 and 1")]
    Jitter,
}

impl Backoff {
    pub fn try_new(min: Duration, max: Duration, jitter: f64) -> Result<Backoff, InvalidBackoff> {
        if min.is_zero() {
            return Err(InvalidBackoff::ZeroMin);
        }
        if max < min {
            return Err(InvalidBackoff::MaxBelowMin);
        }
        if !(jitter.is_finite() && (0.0..=1.0).contains(&jitter)) {
            return Err(InvalidBackoff::Jitter);
        }
        Ok(Backoff { min, max, jitter })
    }

    /// A backoff from constants known to be valid (a programming error
    /// otherwise).
    pub const fn new_const(min: Duration, max: Duration, jitter: f64) -> Backoff {
        assert!(!min.is_zero() && max.as_nanos() >= min.as_nanos());
        assert!(jitter >= 0.0 && jitter <= 1.0);
        Backoff { min, max, jitter }
    }

    /// The delay before retry number `attempt` (1 = the first retry),
    /// without jitter.
    pub fn base(&self, attempt: u32) -> Duration {
        let shift = attempt.saturating_sub(1).min(32);
        self.min
            .checked_mul(1u32 << shift.min(31))
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// The delay before retry number `attempt`, with jitter (never over
    /// `max x (1 + jitter)`).
    pub fn delay(&self, attempt: u32) -> Duration {
        let b = self.base(attempt);
        if self.jitter == 0.0 {
            return b;
        }
        b + b.mul_f64(rand::random::<f64>() * self.jitter)
    }

    /// The delays of `retries` retries, in order.
    pub fn delays(&self, retries: u32) -> impl Iterator<Item = Duration> + '_ {
        (1..=retries).map(|a| self.delay(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn invalid_settings_are_refused() {
        assert_eq!(
            Backoff::try_new(Duration::ZERO, MS, 0.0),
            Err(InvalidBackoff::ZeroMin)
        );
        assert_eq!(
            Backoff::try_new(MS * 10, MS, 0.0),
            Err(InvalidBackoff::MaxBelowMin)
        );
        assert_eq!(Backoff::try_new(MS, MS, 1.5), Err(InvalidBackoff::Jitter));
        assert_eq!(
            Backoff::try_new(MS, MS, f64::NAN),
            Err(InvalidBackoff::Jitter)
        );
    }

    #[test]
    fn doubles_up_to_the_cap() {
        let b = Backoff::try_new(MS * 100, MS * 5000, 0.0).unwrap();
        let d: Vec<u128> = b.delays(8).map(|d| d.as_millis()).collect();
        assert_eq!(d, vec![100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(b.base(1000), MS * 5000, "no overflow");
    }

    proptest! {
        #[test]
        fn jitter_stays_within_its_share(attempt in 1u32..100, min in 1u64..1000, extra in 0u64..10_000, j in 0.0f64..1.0) {
            let b = Backoff::try_new(MS * min as u32, MS * (min + extra) as u32, j).unwrap();
            let d = b.delay(attempt);
            let base = b.base(attempt);
            prop_assert!(d >= base);
            prop_assert!(d <= base + base.mul_f64(j) + Duration::from_nanos(1));
            prop_assert!(base <= MS * (min + extra) as u32);
        }
    }
}

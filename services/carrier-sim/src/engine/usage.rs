//! Data usage at the simulated carriers: every card uses a deterministic
//! amount each CST day (0 to 20 MB, from the seed, the card and the day; a
//! simplification: the amount does not depend on the card's status), and
//! today's amount accrues evenly over the day on the scaled clock. Usage
//! queries answer from this, each as its contract says (CU: bytes since
//! the billing cycle started, up to now); [`Engine::used_mb`] is the ground
//! truth tests compare with.

use super::*;
use chrono::{Datelike, NaiveDate};
use gsl_domain::calendar::{cst_date, cst_midnight};

/// MB a card uses on one day, at most.
const DAILY_MAX_MB: u64 = 20;

fn hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl Engine {
    /// MB card `card` uses over the whole CST day `day`.
    pub fn daily_mb(&self, card: &str, day: NaiveDate) -> f64 {
        let h = splitmix(
            self.config.seed ^ hash(card) ^ (day.num_days_from_ce() as u64).rotate_left(32),
        );
        (h % (DAILY_MAX_MB * 100 + 1)) as f64 / 100.0
    }

    /// MB used from the start of CST day `first` up to instant `to`.
    pub fn used_mb(&self, card: &str, first: NaiveDate, to: DateTime<Utc>) -> f64 {
        let last = cst_date(to);
        let mut mb = 0.0;
        let mut d = first;
        while d < last {
            mb += self.daily_mb(card, d);
            d = d.succ_opt().expect("a next day");
        }
        if first <= last {
            let start = cst_midnight(last);
            let part = (to - start).num_milliseconds() as f64 / 86_400_000.0;
            mb += self.daily_mb(card, last) * part.clamp(0.0, 1.0);
        }
        mb
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_adds_up_by_day_and_accrues_through_today() {
        let e = Engine::new(SimConfig::default()).unwrap();
        let d = |dd| NaiveDate::from_ymd_opt(2026, 12, dd).unwrap();
        let a = e.daily_mb("C1", d(1));
        assert!((0.0..=20.0).contains(&a));
        assert_eq!(a, e.daily_mb("C1", d(1)), "deterministic");
        // Two full days, then half of the third.
        let noon = cst_midnight(d(3)) + chrono::Duration::hours(12);
        let want = e.daily_mb("C1", d(1)) + e.daily_mb("C1", d(2)) + e.daily_mb("C1", d(3)) / 2.0;
        assert!((e.used_mb("C1", d(1), noon) - want).abs() < 1e-9);
        assert_eq!(e.used_mb("C1", d(5), noon), 0.0, "a period not begun");
    }
}

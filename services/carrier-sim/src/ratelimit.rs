//! Per-account rate limits, by API class, as a sliding window: a call is
//! allowed when fewer than `limit` calls were allowed in the last `window`.
//! "50 per second" therefore means at most 50 in any one-second interval,
//! which is what "strictly" means in the rate-fidelity benchmark. Refused
//! calls are counted and do not use up the budget.

use crate::config::{ApiClass, Limit, Limits};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Window {
    limit: Limit,
    allowed: VecDeque<Instant>,
}

impl Window {
    fn new(limit: Limit) -> Window {
        Window {
            limit,
            allowed: VecDeque::new(),
        }
    }

    /// `Ok(())` if allowed, else how long until a call would be.
    fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        if self.limit.limit == 0 {
            return Ok(());
        }
        let window = Duration::from_millis(self.limit.window_ms.max(1));
        while let Some(front) = self.allowed.front() {
            if now.duration_since(*front) >= window {
                self.allowed.pop_front();
            } else {
                break;
            }
        }
        if (self.allowed.len() as u32) < self.limit.limit {
            self.allowed.push_back(now);
            Ok(())
        } else {
            let oldest = *self.allowed.front().expect("full window is not empty");
            Err(window.saturating_sub(now.duration_since(oldest)))
        }
    }
}

/// One account's limits.
#[derive(Debug)]
pub struct RateLimiter {
    windows: [Mutex<Window>; 3],
    over_limit: [AtomicU64; 3],
    allowed: [AtomicU64; 3],
    /// Every class spends the change window.
    shared: std::sync::atomic::AtomicBool,
}

fn idx(c: ApiClass) -> usize {
    match c {
        ApiClass::Change => 0,
        ApiClass::Query => 1,
        ApiClass::List => 2,
    }
}

impl RateLimiter {
    pub fn new(l: &Limits) -> RateLimiter {
        RateLimiter {
            windows: [
                Mutex::new(Window::new(l.change)),
                Mutex::new(Window::new(l.query)),
                Mutex::new(Window::new(l.list)),
            ],
            over_limit: Default::default(),
            allowed: Default::default(),
            shared: std::sync::atomic::AtomicBool::new(l.shared),
        }
    }

    /// Take one call of `class`; on refusal, the wait until one would pass.
    pub fn check(&self, class: ApiClass) -> Result<(), Duration> {
        let i = if self.shared.load(Ordering::Relaxed) {
            idx(ApiClass::Change)
        } else {
            idx(class)
        };
        let r = self.windows[i]
            .lock()
            .expect("limiter lock")
            .try_take(Instant::now());
        match r {
            Ok(()) => {
                self.allowed[i].fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(wait) => {
                self.over_limit[i].fetch_add(1, Ordering::Relaxed);
                Err(wait)
            }
        }
    }

    pub fn set(&self, l: &Limits) {
        for (c, lim) in [
            (ApiClass::Change, l.change),
            (ApiClass::Query, l.query),
            (ApiClass::List, l.list),
        ] {
            *self.windows[idx(c)].lock().expect("limiter lock") = Window::new(lim);
        }
        self.shared.store(l.shared, Ordering::Relaxed);
    }

    pub fn limits(&self) -> Limits {
        let get = |c| self.windows[idx(c)].lock().expect("limiter lock").limit;
        Limits {
            change: get(ApiClass::Change),
            query: get(ApiClass::Query),
            list: get(ApiClass::List),
            shared: self.shared.load(Ordering::Relaxed),
        }
    }

    pub fn over_limit(&self, class: ApiClass) -> u64 {
        self.over_limit[idx(class)].load(Ordering::Relaxed)
    }

    pub fn allowed(&self, class: ApiClass) -> u64 {
        self.allowed[idx(class)].load(Ordering::Relaxed)
    }

    pub fn reset_counters(&self) {
        for i in 0..3 {
            self.over_limit[i].store(0, Ordering::Relaxed);
            self.allowed[i].store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_window_is_strict() {
        let mut w = Window::new(Limit::per_second(3));
        let t0 = Instant::now();
        assert!(w.try_take(t0).is_ok());
        assert!(w.try_take(t0 + Duration::from_millis(100)).is_ok());
        assert!(w.try_take(t0 + Duration::from_millis(200)).is_ok());
        let wait = w.try_take(t0 + Duration::from_millis(300)).unwrap_err();
        assert_eq!(wait, Duration::from_millis(700));
        // refused calls do not consume budget; the first slot frees at t0+1s
        assert!(w.try_take(t0 + Duration::from_millis(999)).is_err());
        assert!(w.try_take(t0 + Duration::from_millis(1000)).is_ok());
        assert!(w.try_take(t0 + Duration::from_millis(1050)).is_err());
    }

    #[test]
    fn off_means_unlimited_and_counters_count() {
        let r = RateLimiter::new(&Limits {
            change: Limit::OFF,
            query: Limit::per_second(1),
            list: Limit::per_second(1),
            shared: false,
        });
        for _ in 0..1000 {
            assert!(r.check(ApiClass::Change).is_ok());
        }
        assert!(r.check(ApiClass::Query).is_ok());
        assert!(r.check(ApiClass::Query).is_err());
        assert!(r.check(ApiClass::Query).is_err());
        assert_eq!(r.over_limit(ApiClass::Query), 2);
        assert_eq!(r.allowed(ApiClass::Change), 1000);
        r.reset_counters();
        assert_eq!(r.over_limit(ApiClass::Query), 0);
    }

    /// With one budget, a query spends what a change would have: two
    /// calls of any class in one second when the limit is 2.
    #[test]
    fn one_budget_is_shared_by_every_class() {
        let r = RateLimiter::new(&Limits::one_budget(2));
        assert!(r.check(ApiClass::Change).is_ok());
        assert!(r.check(ApiClass::Query).is_ok());
        assert!(r.check(ApiClass::Query).is_err());
        assert!(r.check(ApiClass::List).is_err());
        assert!(r.limits().shared);
    }
}

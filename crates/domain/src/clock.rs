//! A clock that can run faster than real time.
//!
//! Carrier promises are in working days; tests cannot wait for them. Every
//! service reads time through a [`Clock`]: virtual time = `start` + (real time
//! since `anchor`) x `scale`. With `scale = 86400` one real second is one
//! virtual day. Processes that share `start`, `anchor` and `scale` (the
//! simulator and the adapters in a test) agree on the virtual time exactly.
//! Cooldowns, quotas, month boundaries and SLA deadlines are all virtual.

use chrono::{DateTime, Duration, Utc};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::SystemTime;
use thiserror::Error;

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Virtual time at the anchor.
    start: DateTime<Utc>,
    /// Real time the virtual `start` corresponds to.
    anchor: DateTime<Utc>,
    scale: f64,
    /// A manual clock (tests): virtual time is `start` plus this many
    /// microseconds, moved only by [`ManualClock::advance`].
    manual: Option<&'static AtomicI64>,
}

impl PartialEq for Clock {
    fn eq(&self, o: &Clock) -> bool {
        self.start == o.start
            && self.anchor == o.anchor
            && self.scale == o.scale
            && match (self.manual, o.manual) {
                (None, None) => true,
                (Some(a), Some(b)) => std::ptr::eq(a, b),
                _ => false,
            }
    }
}

/// Moves a manual [`Clock`] (and every copy of it) forward.
#[derive(Debug, Clone, Copy)]
pub struct ManualClock(&'static AtomicI64);

impl ManualClock {
    pub fn advance(&self, by: Duration) {
        self.0
            .fetch_add(by.num_microseconds().unwrap_or(i64::MAX), Ordering::SeqCst);
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClockError {
    #[error("time scale must be a finite number > 0, got {0}")]
    Scale(String),
    #[error("clock start must be an RFC 3339 time, got {0:?}")]
    Start(String),
    #[error("clock anchor must be unix seconds, got {0:?}")]
    Anchor(String),
}

impl Default for Clock {
    fn default() -> Self {
        Clock::real()
    }
}

impl Clock {
    /// Real time.
    pub fn real() -> Clock {
        let now = Utc::now();
        Clock {
            start: now,
            anchor: now,
            scale: 1.0,
            manual: None,
        }
    }

    /// A clock that stands still at `start` until moved (tests: time that
    /// depends on nothing but the test). Its offset lives for the rest of
    /// the process, one small allocation per clock.
    pub fn manual(start: DateTime<Utc>) -> (Clock, ManualClock) {
        let offset: &'static AtomicI64 = Box::leak(Box::new(AtomicI64::new(0)));
        (
            Clock {
                start,
                anchor: start,
                scale: 1.0,
                manual: Some(offset),
            },
            ManualClock(offset),
        )
    }

    /// A scaled clock: virtual `start` at real `anchor`, running `scale` times
    /// faster than real time.
    pub fn new(
        start: DateTime<Utc>,
        anchor: DateTime<Utc>,
        scale: f64,
    ) -> Result<Clock, ClockError> {
        if !(scale.is_finite() && scale > 0.0) {
            return Err(ClockError::Scale(scale.to_string()));
        }
        Ok(Clock {
            start,
            anchor,
            scale,
            manual: None,
        })
    }

    /// Build from the settings services read from their environment:
    /// `start` (RFC 3339, default now), `anchor` (unix seconds, default now),
    /// `scale` (default 1).
    pub fn from_settings(
        start: Option<&str>,
        anchor: Option<&str>,
        scale: Option<&str>,
    ) -> Result<Clock, ClockError> {
        let now = Utc::now();
        let anchor = match anchor.map(str::trim).filter(|s| !s.is_empty()) {
            None => now,
            Some(a) => {
                let secs: f64 = a.parse().map_err(|_| ClockError::Anchor(a.to_owned()))?;
                if !secs.is_finite() {
                    return Err(ClockError::Anchor(a.to_owned()));
                }
                DateTime::from_timestamp_millis((secs * 1000.0) as i64)
                    .ok_or_else(|| ClockError::Anchor(a.to_owned()))?
            }
        };
        let start = match start.map(str::trim).filter(|s| !s.is_empty()) {
            None => anchor,
            Some(s) => DateTime::parse_from_rfc3339(s)
                .map_err(|_| ClockError::Start(s.to_owned()))?
                .with_timezone(&Utc),
        };
        let scale = match scale.map(str::trim).filter(|s| !s.is_empty()) {
            None => 1.0,
            Some(s) => s.parse().map_err(|_| ClockError::Scale(s.to_owned()))?,
        };
        Clock::new(start, anchor, scale)
    }

    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Virtual time at a real instant.
    pub fn at(&self, real: DateTime<Utc>) -> DateTime<Utc> {
        let real_elapsed = (real - self.anchor).num_microseconds().unwrap_or(i64::MAX);
        let virt = (real_elapsed as f64 * self.scale) as i64;
        self.start + Duration::microseconds(virt)
    }

    /// Virtual now.
    pub fn now(&self) -> DateTime<Utc> {
        if let Some(offset) = self.manual {
            return self.start + Duration::microseconds(offset.load(Ordering::SeqCst));
        }
        self.at(DateTime::<Utc>::from(SystemTime::now()))
    }

    /// How long, in real time, a virtual duration takes.
    pub fn real_duration(&self, virt: Duration) -> std::time::Duration {
        let us = virt.num_microseconds().unwrap_or(i64::MAX).max(0) as f64 / self.scale;
        std::time::Duration::from_micros(us as u64)
    }

    /// How long, in real time, until a virtual instant (zero if past).
    pub fn real_until(&self, virt: DateTime<Utc>) -> std::time::Duration {
        self.real_duration(virt - self.now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_its_copies_follow() {
        let start = Utc::now();
        let (c, hand) = Clock::manual(start);
        let copy = c;
        assert_eq!(c.now(), start);
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(c.now(), start, "real time does not move it");
        hand.advance(Duration::seconds(90));
        assert_eq!(copy.now(), start + Duration::seconds(90));
        assert_eq!(c, copy);
        assert_ne!(c, Clock::manual(start).0);
    }

    #[test]
    fn scaled_clock_maps_real_to_virtual() {
        let start = DateTime::parse_from_rfc3339("2026-11-30T15:59:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let anchor = DateTime::from_timestamp(1_000_000, 0).unwrap();
        let c = Clock::new(start, anchor, 60.0).unwrap();
        // one real second later, one virtual minute later
        assert_eq!(
            c.at(anchor + Duration::seconds(1)),
            start + Duration::minutes(1)
        );
        assert_eq!(
            c.real_duration(Duration::minutes(5)),
            std::time::Duration::from_secs(5)
        );
    }

    #[test]
    fn settings_parse() {
        let c = Clock::from_settings(Some("2026-11-30T16:00:00Z"), Some("1000000"), Some("86400"))
            .unwrap();
        assert_eq!(c.scale(), 86400.0);
        assert_eq!(
            c.at(DateTime::from_timestamp(1_000_001, 0).unwrap()),
            DateTime::parse_from_rfc3339("2026-12-01T16:00:00Z")
                .unwrap()
                .with_timezone(&Utc)
        );
        assert!(matches!(
            Clock::from_settings(None, None, Some("0")),
            Err(ClockError::Scale(_))
        ));
        assert!(matches!(
            Clock::from_settings(None, None, Some("fast")),
            Err(ClockError::Scale(_))
        ));
        assert!(matches!(
            Clock::from_settings(Some("yesterday"), None, None),
            Err(ClockError::Start(_))
        ));
        assert!(matches!(
            Clock::from_settings(None, Some("x"), None),
            Err(ClockError::Anchor(_))
        ));
        let real = Clock::from_settings(None, None, None).unwrap();
        assert!((real.now() - Utc::now()).num_seconds().abs() < 5);
    }
}

//! Pacing under the carrier's rate limit, per API class (change / query /
//! list).
//!
//! * **Local** (one replica): governor, with burst 1 so calls are evenly
//!   spaced (governor's default burst equals the quota and would let about
//!   twice the rate through in the first second).
//! * **Shared** (N replicas): the budget is a timeline of evenly spaced call
//!   slots, `window / (limit x safety)` apart. One KV record per carrier and
//!   class holds the next free slot; a replica claims the next few slots by
//!   compare-and-set and makes each call at its slot's time. Replicas never
//!   hold the same slot, so together they make at most one call per slot.
//!
//! **Never over the limit in any sliding window.** The carrier is assumed
//! to count calls in a sliding window (a setting cannot make it kinder). Any
//! `limit + 1` consecutive slots span `limit x interval = window / safety`,
//! that is the window plus a slack of `window x (1/safety - 1)` (53 ms of a
//! second at the default 0.95). A slot may be used at most half that slack
//! late ([`Ticket::late`]: checked after the wait and again right before the
//! call is sent, after any check the caller makes), so any `limit + 1` calls
//! leave our side at least `window + slack/2` apart, and the other half of
//! the slack absorbs network jitter: whatever the replica count or the
//! scheduling delays, at most `limit` calls reach the carrier in any window.
//! A slot that cannot be used on time is dropped, never used late. A replica
//! claims only as many slots as it has callers waiting, so idle replicas
//! leave the budget to busy ones. Needs clocks in sync across nodes (NTP): a
//! replica whose clock runs ahead calls early.

use crate::config::{AdapterConfig, Budget, Rate};
use async_nats::jetstream::kv::Store;
use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use gsl_bus::kv::{self, Cas};
use prometheus_client::metrics::histogram::Histogram;
use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Most slots claimed in one compare-and-set.
const MAX_CLAIM: usize = 8;

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// The right to make one call: its slot's time and how late it may still
/// be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    slot_us: i64,
    tolerance_us: i64,
}

impl Ticket {
    /// Too late to be used now: the call must take another slot.
    pub fn late(&self) -> bool {
        now_us() - self.slot_us > self.tolerance_us
    }
}

/// How late a slot may be used: half the window's slack (see the module
/// doc), and never more than a quarter interval.
fn tolerance(rate: Rate, safety: f64, interval: Duration) -> Duration {
    let slack = rate.window.as_secs_f64() * (1.0 / safety - 1.0);
    Duration::from_secs_f64((slack / 2.0).min(interval.as_secs_f64() / 4.0))
}

/// Slot lease on a shared KV timeline.
pub struct SlotLease {
    kv: Store,
    key: String,
    interval_us: i64,
    tolerance_us: i64,
    slots: tokio::sync::Mutex<VecDeque<i64>>,
    waiting: AtomicUsize,
}

impl SlotLease {
    pub fn new(kv: Store, key: String, interval: Duration, tolerance: Duration) -> SlotLease {
        SlotLease {
            kv,
            key,
            interval_us: interval.as_micros().max(1) as i64,
            tolerance_us: tolerance.as_micros() as i64,
            slots: tokio::sync::Mutex::new(VecDeque::new()),
            waiting: AtomicUsize::new(0),
        }
    }

    async fn claim(&self, n: usize) -> Result<Vec<i64>, gsl_bus::BusError> {
        let interval = self.interval_us;
        kv::cas(&self.kv, &self.key, 1000, |cur| {
            let next_free: i64 = cur
                .and_then(|b| std::str::from_utf8(b).ok()?.parse().ok())
                .unwrap_or(0);
            // Claim from a little ahead of now, so the first slot is usable.
            let start = next_free.max(now_us() + 500);
            let slots: Vec<i64> = (0..n as i64).map(|i| start + i * interval).collect();
            let next = start + n as i64 * interval;
            Cas::Write(Bytes::from(next.to_string()), slots)
        })
        .await
    }

    /// Wait for a slot of our own and return at its time.
    pub async fn acquire(&self) -> Ticket {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let tolerance = self.tolerance_us;
        let ticket = loop {
            let slot = {
                let mut q = self.slots.lock().await;
                let now = now_us();
                while q.front().is_some_and(|s| *s < now - tolerance) {
                    q.pop_front();
                }
                if q.is_empty() {
                    let want = self.waiting.load(Ordering::SeqCst).clamp(1, MAX_CLAIM);
                    match self.claim(want).await {
                        Ok(s) => q.extend(s),
                        Err(e) => {
                            tracing::warn!(error = %e, key = %self.key, "rate slot claim failed; retrying");
                            drop(q);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    }
                }
                q.pop_front().expect("claimed at least one slot")
            };
            let wait = slot - now_us();
            if wait > 0 {
                tokio::time::sleep(Duration::from_micros(wait as u64)).await;
            }
            let t = Ticket {
                slot_us: slot,
                tolerance_us: tolerance,
            };
            if !t.late() {
                break t;
            }
            // Woke too late to use it: the slot is dropped, never used late.
        };
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        ticket
    }
}

enum Class {
    Off,
    /// governor, and the tolerance of its grants.
    Local(DefaultDirectRateLimiter, Duration),
    Shared(Box<SlotLease>),
}

impl Class {
    fn interval(rate: Rate, safety: f64) -> Duration {
        rate.window.div_f64(f64::from(rate.limit) * safety)
    }

    fn local(rate: Rate, safety: f64) -> Class {
        if rate.limit == 0 {
            return Class::Off;
        }
        let interval = Class::interval(rate, safety);
        let quota = Quota::with_period(interval)
            .expect("non-zero interval")
            .allow_burst(NonZeroU32::new(1).expect("1 is not 0"));
        Class::Local(
            RateLimiter::direct(quota),
            tolerance(rate, safety, interval),
        )
    }

    fn build(rate: Rate, safety: f64, budget: Budget, kv: &Store, key: String) -> Class {
        match (rate.limit, budget) {
            (0, _) => Class::Off,
            (_, Budget::Local) => Class::local(rate, safety),
            (_, Budget::Shared) => {
                let interval = Class::interval(rate, safety);
                Class::Shared(Box::new(SlotLease::new(
                    kv.clone(),
                    key,
                    interval,
                    tolerance(rate, safety, interval),
                )))
            }
        }
    }

    async fn wait(&self) -> Option<Ticket> {
        match self {
            Class::Off => None,
            Class::Local(l, tol) => {
                l.until_ready().await;
                Some(Ticket {
                    slot_us: now_us(),
                    tolerance_us: tol.as_micros() as i64,
                })
            }
            Class::Shared(s) => Some(s.acquire().await),
        }
    }
}

/// Paces one carrier's calls by API class.
///
/// Card sync reads ([`Pacer::sync`]) spend the query budget (the change
/// budget where queries do), the one work orders use, so together they
/// never go over the carrier's limit. While work-order calls are waiting
/// for that budget, sync takes at most its share (`GSL_SYNC_SHARE`) of it;
/// when none wait it may take all that is free.
pub struct Pacer {
    change: Class,
    query: Class,
    /// Queries spend the change budget.
    one_budget: bool,
    wait_seconds: Histogram,
    /// Work-order calls waiting for a slot now.
    work_waiting: AtomicUsize,
    /// Sync's share of the budget while work waits.
    sync_share: Option<DefaultDirectRateLimiter>,
}

/// Counts a work-order call as waiting while it is alive.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(n: &'a AtomicUsize) -> Waiting<'a> {
        n.fetch_add(1, Ordering::SeqCst);
        Waiting(n)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A limiter at `share` of `rate`: one call per `window / (limit x share)`.
fn share_limiter(rate: Rate, share: f64) -> Option<DefaultDirectRateLimiter> {
    if rate.limit == 0 || share >= 1.0 {
        return None;
    }
    let interval = rate.window.div_f64(f64::from(rate.limit) * share.max(1e-6));
    let quota = Quota::with_period(interval)?.allow_burst(NonZeroU32::new(1)?);
    Some(RateLimiter::direct(quota))
}

impl Pacer {
    pub fn new(cfg: &AdapterConfig, rate_kv: &Store, wait_seconds: Histogram) -> Arc<Pacer> {
        let key = |class: &str| format!("rate.{}.{class}", cfg.carrier.as_str());
        Arc::new(Pacer {
            change: Class::build(
                cfg.rate_change,
                cfg.rate_safety,
                cfg.budget,
                rate_kv,
                key("change"),
            ),
            query: Class::build(
                cfg.rate_query,
                cfg.rate_safety,
                cfg.budget,
                rate_kv,
                key("query"),
            ),
            one_budget: cfg.one_budget,
            wait_seconds,
            work_waiting: AtomicUsize::new(0),
            sync_share: share_limiter(
                if cfg.one_budget {
                    cfg.rate_change
                } else {
                    cfg.rate_query
                },
                cfg.sync.share,
            ),
        })
    }

    /// A pacer that never waits (tests of the request stack).
    pub fn off() -> Arc<Pacer> {
        Arc::new(Pacer {
            change: Class::Off,
            query: Class::Off,
            one_budget: false,
            wait_seconds: Histogram::new([0.1]),
            work_waiting: AtomicUsize::new(0),
            sync_share: None,
        })
    }

    async fn timed(&self, c: &Class, class: &'static str) -> Option<Ticket> {
        let span = tracing::info_span!("limiter_wait", api_class = class);
        let t = std::time::Instant::now();
        let ticket = tracing::Instrument::instrument(c.wait(), span).await;
        self.wait_seconds.observe(t.elapsed().as_secs_f64());
        ticket
    }

    /// Before a call that changes something. The ticket must not be
    /// [`late`](Ticket::late) when the call is sent.
    pub async fn change(&self) -> Option<Ticket> {
        let _w = Waiting::new(&self.work_waiting);
        self.timed(&self.change, "change").await
    }

    /// Before a query.
    pub async fn query(&self) -> Option<Ticket> {
        let _w = Waiting::new(&self.work_waiting);
        self.timed(self.query_class(), "query").await
    }

    fn query_class(&self) -> &Class {
        if self.one_budget {
            &self.change
        } else {
            &self.query
        }
    }

    /// Whether work-order calls are waiting for the budget now.
    pub fn work_waiting(&self) -> bool {
        self.work_waiting.load(Ordering::SeqCst) > 0
    }

    /// Before a card-sync read (a query of the budget work orders use):
    /// while work-order calls wait, first wait for sync's share.
    /// `change_budget`: the carrier module spends the change budget for this
    /// read (China Unicom: one budget for every call).
    pub async fn sync(&self, change_budget: bool) -> Option<Ticket> {
        if self.work_waiting()
            && let Some(share) = &self.sync_share
        {
            share.until_ready().await;
        }
        let class = if change_budget {
            &self.change
        } else {
            self.query_class()
        };
        self.timed(class, "sync").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gsl_testkit::NatsServer;

    /// Three leases on one timeline never hold the same slot, and slots are
    /// evenly spaced.
    #[tokio::test]
    async fn leases_share_one_timeline() {
        let nats = NatsServer::start().await.unwrap();
        let (_c, js) = gsl_bus::connect(&gsl_bus::BusConfig::new(nats.url(), "t"))
            .await
            .unwrap();
        let b = gsl_bus::topology::ensure(&js, &Default::default())
            .await
            .unwrap();
        let leases: Vec<Arc<SlotLease>> = (0..3)
            .map(|_| {
                Arc::new(SlotLease::new(
                    b.rate.clone(),
                    "rate.t.change".into(),
                    Duration::from_millis(10),
                    Duration::from_millis(1),
                ))
            })
            .collect();
        let mut all = Vec::new();
        for l in &leases {
            for _ in 0..5 {
                all.extend(l.claim(4).await.unwrap());
            }
        }
        all.sort_unstable();
        assert_eq!(all.len(), 60);
        for w in all.windows(2) {
            assert!(
                w[1] - w[0] >= 10_000,
                "slots {} and {} closer than the interval",
                w[0],
                w[1]
            );
        }
    }

    #[tokio::test]
    async fn local_pacing_is_evenly_spaced() {
        let l = Class::local(Rate::per_second(50), 1.0);
        let t = std::time::Instant::now();
        for _ in 0..11 {
            l.wait().await;
        }
        // burst 1: 10 intervals of 20 ms after the first call
        assert!(
            t.elapsed() >= Duration::from_millis(190),
            "{:?}",
            t.elapsed()
        );
        assert!(matches!(Class::local(Rate::OFF, 1.0), Class::Off));
    }

    /// Any `limit + 1` consecutive slots, each used as late as allowed,
    /// still span more than the window: no sliding window sees more than
    /// `limit` calls, with half the slack left for network jitter.
    #[test]
    fn late_slots_never_fit_limit_plus_one_calls_in_a_window() {
        for (limit, window, safety) in [
            (5, Duration::from_secs(1), 0.95),
            (5, Duration::from_secs(1), 0.98),
            (50, Duration::from_secs(1), 0.95),
            (300, Duration::from_secs(60), 0.95),
            (1, Duration::from_secs(1), 0.95),
        ] {
            let rate = Rate { limit, window };
            let interval = Class::interval(rate, safety);
            let tol = tolerance(rate, safety, interval);
            // The first call as late as allowed, the (limit+1)-th on time.
            let span = interval * limit - tol;
            let slack = window.mul_f64(1.0 / safety - 1.0);
            assert!(
                span >= window + slack / 2 - Duration::from_micros(1),
                "{limit}/{window:?} at {safety}: span {span:?}, tolerance {tol:?}"
            );
            assert!(!tol.is_zero());
        }
    }
}

//! The full sweep: every card of the carrier read once per interval, the
//! reads spread evenly over it rather than in a burst.
//!
//! The cursor (`<carrier>.sweep` in `gsl_sync`) says when this sweep
//! started, how far it got and how many cards it covers. The next chunk is
//! due at `started + done x interval / total`; whichever replica finds it
//! due claims it by compare-and-set and reads it. The sweep that reaches the
//! end schedules the next one at `started + interval`.
//!
//! * **Each card** (CMCC, CT, CU): the chunk is the next cards of the store
//!   (`Results.SweepCards`), skipping cards read since the sweep started (a
//!   refresh, a changed-since pass, an order's confirming read).
//! * **List** (tri-net): the chunk is the next page of the carrier's own
//!   list; fetching it is a call, so the page is taken under a short lease
//!   first and no two replicas fetch the same page.
//! * **Usage** (`<carrier>.usage`, where the carrier reads usage in
//!   batches: CMCC, tri-net): the chunk is the carrier's batch of the
//!   store's cards, over `GSL_SYNC_USAGE_INTERVAL_SECS`. CU's usage comes
//!   with its per-card read, at no extra call.

use super::{Syncer, nap, now_ms};
use crate::carrier::CallCtx;
use crate::reads::{SweepBy, SyncCard};
use gsl_proto::v1;
use gsl_telemetry::shutdown::Shutdown;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// How long a replica may hold a list page before another takes it over.
const LEASE_MS: i64 = 60_000;
/// Cards of a list page (tri-net's largest `limit`).
pub const LIST_PAGE: u64 = 100;

/// A sweep's durable progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepState {
    /// When this sweep starts or started (ms since the epoch, real time);
    /// 0: none yet.
    pub started_ms: i64,
    /// The same instant on the services' shared clock (what "read since the
    /// sweep started" compares with), RFC 3339.
    #[serde(default)]
    pub started_clock: String,
    /// Each card: the last card key claimed. List: the list's cursor.
    pub after: String,
    /// Cards claimed (looked at) so far.
    pub done: u64,
    /// Cards this sweep covers.
    pub total: u64,
    /// List sweeps: a page being fetched, held until this time.
    #[serde(default)]
    pub lease_until_ms: i64,
    /// When the newest complete sweep started (sync lag).
    #[serde(default)]
    pub last_complete_ms: i64,
}

impl SweepState {
    /// When the next chunk of `chunk` cards is due.
    pub fn due_ms(&self, interval: Duration) -> i64 {
        if self.total == 0 {
            return self.started_ms;
        }
        let per_card = interval.as_millis() as f64 / self.total as f64;
        self.started_ms + (self.done as f64 * per_card) as i64
    }

    /// The state after the sweep reached the end at `now_ms`.
    pub fn completed(&self, interval: Duration, now_ms: i64) -> SweepState {
        SweepState {
            started_ms: (self.started_ms + interval.as_millis() as i64).max(now_ms),
            last_complete_ms: self.started_ms,
            ..SweepState::default()
        }
    }
}

/// Which sweep: the cards' state (read one by one or through the list), or
/// their usage (read in the carrier's usage batches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sweep {
    Cards(SweepBy),
    Usage,
}

impl Sweep {
    /// Its record in `gsl_sync` and its metric label.
    pub fn name(self) -> &'static str {
        match self {
            Sweep::Cards(_) => "sweep",
            Sweep::Usage => "usage",
        }
    }

    fn interval(self, s: &Syncer) -> Duration {
        match self {
            Sweep::Cards(_) => s.cfg.sync.interval,
            Sweep::Usage => s.cfg.sync.usage_interval,
        }
    }
}

fn key(s: &Syncer, what: Sweep) -> String {
    format!("{}.{}", s.cfg.carrier.as_str(), what.name())
}

async fn load(s: &Syncer, what: Sweep) -> Option<(SweepState, u64)> {
    super::load_state(&s.kv, &key(s, what)).await
}

/// Write `st` if the cursor is still at `rev`: its new revision.
async fn store(s: &Syncer, what: Sweep, st: &SweepState, rev: u64) -> Option<u64> {
    super::store_state(&s.kv, &key(s, what), st, rev).await
}

/// Run sweeps of one kind until shutdown.
pub async fn run(s: Arc<Syncer>, what: Sweep, stop: Shutdown) {
    loop {
        if stop.is_triggered() {
            return;
        }
        let wait = match step(&s, what).await {
            Step::Again => Duration::ZERO,
            Step::Wait(d) => d,
        };
        if !wait.is_zero() && nap(&stop, wait).await {
            return;
        }
    }
}

/// What the loop does next.
#[derive(Debug)]
pub enum Step {
    Again,
    Wait(Duration),
}

fn ms(d: i64) -> Duration {
    Duration::from_millis(d.clamp(0, 5_000) as u64)
}

/// Claim and read the next chunk if one is due.
pub async fn step(s: &Syncer, what: Sweep) -> Step {
    let Some((mut st, rev)) = load(s, what).await else {
        return Step::Wait(Duration::from_secs(1));
    };
    let now = now_ms();
    let interval = what.interval(s);
    if st.started_ms == 0 {
        st.started_ms = now;
    }
    s.metrics
        .sweep_lag_seconds
        .get_or_create(&s.labels(what.name()))
        .set(
            (now - if st.last_complete_ms > 0 {
                st.last_complete_ms
            } else {
                st.started_ms
            })
            .max(0)
                / 1000,
        );
    if st.started_ms > now {
        return Step::Wait(ms(st.started_ms - now));
    }
    if st.started_clock.is_empty() {
        st.started_clock = s.now().to_rfc3339();
    }
    let due = st.due_ms(interval);
    if due > now {
        return Step::Wait(ms(due - now));
    }
    match what {
        Sweep::Cards(SweepBy::EachCard) | Sweep::Usage => each_card(s, what, st, rev).await,
        Sweep::Cards(SweepBy::List) => list(s, st, rev, now).await,
        Sweep::Cards(SweepBy::None) => Step::Wait(Duration::from_secs(3600)),
    }
}

async fn each_card(s: &Syncer, what: Sweep, mut st: SweepState, rev: u64) -> Step {
    let (chunk, read_before) = match what {
        // A usage batch is the carrier's batch size; a status read does
        // not make a usage read unneeded.
        Sweep::Usage => (s.api.usage_batch().max(1) as u32, None),
        Sweep::Cards(_) => (
            s.cfg.sync.chunk as u32,
            chrono::DateTime::parse_from_rfc3339(&st.started_clock)
                .ok()
                .map(|t| gsl_proto::convert::timestamp(t.with_timezone(&chrono::Utc))),
        ),
    };
    let page = match s
        .reporter
        .sweep_cards(v1::SweepCardsRequest {
            after: st.after.clone(),
            limit: chunk,
            read_before,
            carrier: s.wire_carrier(),
        })
        .await
    {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "card sync: the gateway did not give the next cards");
            return Step::Wait(Duration::from_secs(5));
        }
    };
    if st.after.is_empty() && st.done == 0 {
        st.total = page.total;
    }
    let next = if page.end {
        st.completed(what.interval(s), now_ms())
    } else {
        SweepState {
            after: page.last.clone(),
            done: st.done + u64::from(chunk),
            ..st.clone()
        }
    };
    if store(s, what, &next, rev).await.is_none() {
        // Another replica claimed it first.
        return Step::Again;
    }
    s.metrics
        .sweep_done
        .get_or_create(&s.labels(what.name()))
        .set(next.done as i64);
    s.metrics
        .sweep_total
        .get_or_create(&s.labels(what.name()))
        .set(st.total as i64);
    let cards: Vec<SyncCard> = page.cards.into_iter().map(SyncCard::from).collect();
    match what {
        Sweep::Usage => s.usage_and_report(&cards).await,
        Sweep::Cards(_) => s.read_and_report(&cards, "sweep").await,
    };
    if page.end {
        tracing::info!(
            cards = st.total,
            sweep = what.name(),
            "card sync: sweep complete"
        );
    }
    Step::Again
}

async fn list(s: &Syncer, mut st: SweepState, rev: u64, now: i64) -> Step {
    if st.lease_until_ms > now {
        return Step::Wait(ms(st.lease_until_ms - now));
    }
    if st.after.is_empty() && st.done == 0 && st.total == 0 {
        // The store's count spreads the pages over the interval.
        match s
            .reporter
            .sweep_cards(v1::SweepCardsRequest {
                after: String::new(),
                limit: 1,
                read_before: None,
                carrier: s.wire_carrier(),
            })
            .await
        {
            Ok(p) => st.total = p.total.max(1),
            Err(e) => {
                tracing::warn!(error = %e, "card sync: the gateway did not give the card count");
                return Step::Wait(Duration::from_secs(5));
            }
        }
    }
    let held = SweepState {
        lease_until_ms: now + LEASE_MS,
        ..st.clone()
    };
    let what = Sweep::Cards(SweepBy::List);
    let Some(held_rev) = store(s, what, &held, rev).await else {
        return Step::Again;
    };
    let ctx = CallCtx::sync(&s.pacer);
    let clock = s.cfg.clock;
    let clock_now = move || clock.now();
    let page = s.api.list_cards(&ctx, None, &st.after, &clock_now).await;
    let page = match page {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "card sync: list page failed");
            s.metrics
                .read_errors
                .get_or_create(&s.labels("sweep"))
                .inc();
            // Let the lease go so the page is tried again.
            store(s, what, &st, held_rev).await;
            return Step::Wait(Duration::from_secs(5));
        }
    };
    let looked = (page.reads.len() + page.to_read.len()) as u64;
    let next = match &page.next {
        None => st.completed(s.cfg.sync.interval, now_ms()),
        Some(c) => SweepState {
            after: c.clone(),
            done: st.done + looked.max(1),
            lease_until_ms: 0,
            ..st.clone()
        },
    };
    s.report(page.reads, "sweep").await;
    let extra: Vec<SyncCard> = page
        .to_read
        .into_iter()
        .map(|id| SyncCard {
            id,
            ..SyncCard::default()
        })
        .collect();
    s.read_and_report(&extra, "sweep").await;
    if store(s, what, &next, held_rev).await.is_none() {
        tracing::warn!(
            "card sync: the list sweep's lease was taken over; its page may be read again"
        );
    }
    Step::Again
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_spread_over_the_interval() {
        let st = SweepState {
            started_ms: 1_000,
            total: 100,
            done: 50,
            ..SweepState::default()
        };
        // Half the cards: half the interval.
        assert_eq!(st.due_ms(Duration::from_secs(100)), 1_000 + 50_000);
        let empty = SweepState {
            started_ms: 7,
            ..SweepState::default()
        };
        assert_eq!(empty.due_ms(Duration::from_secs(100)), 7);
    }

    #[test]
    fn the_next_sweep_starts_one_interval_after_this_one() {
        let st = SweepState {
            started_ms: 1_000,
            total: 10,
            done: 10,
            after: "x".into(),
            ..SweepState::default()
        };
        let next = st.completed(Duration::from_secs(60), 2_000);
        assert_eq!(next.started_ms, 61_000);
        assert_eq!(next.last_complete_ms, 1_000);
        assert!(next.after.is_empty() && next.done == 0 && next.total == 0);
        // A sweep that overran its interval: the next starts now.
        assert_eq!(
            st.completed(Duration::from_secs(60), 90_000).started_ms,
            90_000
        );
    }
}

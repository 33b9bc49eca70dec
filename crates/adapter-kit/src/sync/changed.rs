//! Changed-since passes (CU's `modifiedSince`, tri-net's list): every
//! `GSL_SYNC_CHANGED_SECS`, the cards the carrier says changed since the
//! last pass are read (CU: its list names status only, so each costs a read
//! of its own; tri-net: the list shows the cards in full).
//!
//! The pass is held by a lease in `<carrier>.changed`; its `since` moves on
//! only when a pass completes, so a pass cut short (a replica killed, a
//! gateway down) is done again from the same point.
//!
//! `since` for the next pass: tri-net, the newest `updatedAt` seen (its
//! cursor is a keyset, nothing is skipped; a card at the boundary comes
//! again and changes nothing); CU, the pass's start minus the module's
//! overlap (its answers carry no time), on the services' shared clock,
//! which the carrier's times follow.

use super::{Syncer, nap, now_ms};
use crate::carrier::{CallCtx, CallError};
use crate::reads::{SINCE_TOO_OLD, SyncCard};
use chrono::{DateTime, Utc};
use gsl_telemetry::shutdown::Shutdown;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// Pages of one pass at most (a runaway list cannot hold the lease forever).
const MAX_PAGES: usize = 10_000;
/// How long a pass may hold the lease.
const LEASE_MS: i64 = 10 * 60_000;

/// A changed-since pass's durable state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangedState {
    /// Where the next pass starts (shared clock); `None`: from the first
    /// pass's start (the full sweep covers what came before).
    pub since: Option<DateTime<Utc>>,
    /// The next pass is not due before this (ms, real time).
    pub next_ms: i64,
    /// A pass is running until this (ms, real time).
    pub lease_until_ms: i64,
    /// When the newest complete pass started (ms, real time).
    pub last_complete_ms: i64,
}

fn key(s: &Syncer) -> String {
    format!("{}.changed", s.cfg.carrier.as_str())
}

async fn load(s: &Syncer) -> Option<(ChangedState, u64)> {
    super::load_state(&s.kv, &key(s)).await
}

async fn store(s: &Syncer, st: &ChangedState, rev: u64) -> Option<u64> {
    super::store_state(&s.kv, &key(s), st, rev).await
}

/// How far back the next pass starts where answers carry no time (the
/// carrier module's, from its contract: CU's `GSL_CU_SYNC_OVERLAP_SECS`).
fn overlap(s: &Syncer) -> chrono::Duration {
    chrono::Duration::from_std(s.api.sync_plan().overlap).unwrap_or_default()
}

/// Run passes until shutdown.
pub async fn run(s: Arc<Syncer>, stop: Shutdown) {
    loop {
        let wait = pass(&s).await;
        if nap(&stop, wait).await {
            return;
        }
    }
}

/// Run one pass if one is due; returns how long to wait before looking again.
pub async fn pass(s: &Syncer) -> Duration {
    let Some((st, rev)) = load(s).await else {
        return Duration::from_secs(1);
    };
    let now = now_ms();
    if st.last_complete_ms > 0 {
        s.metrics
            .changed_lag_seconds
            .get_or_create(&s.labels("changed"))
            .set((now - st.last_complete_ms).max(0) / 1000);
    }
    let ready = st.next_ms.max(st.lease_until_ms);
    if ready > now {
        return Duration::from_millis((ready - now).min(5_000) as u64);
    }
    let held = ChangedState {
        lease_until_ms: now + LEASE_MS,
        ..st.clone()
    };
    let Some(held_rev) = store(s, &held, rev).await else {
        return Duration::ZERO;
    };
    let t0 = s.now();
    let since = st.since.unwrap_or(t0);
    let (newest, complete) = read_changes(s, since).await;
    let next_since = match newest {
        // A list with change times (tri-net): continue from the newest seen.
        Some(n) => Some(n.max(since)),
        // One without (CU): from this pass's start, less the overlap.
        None => Some(t0 - overlap(s)),
    };
    let done = ChangedState {
        since: if complete { next_since } else { st.since },
        next_ms: now + s.cfg.sync.changed_every.as_millis() as i64,
        lease_until_ms: 0,
        last_complete_ms: if complete { now } else { st.last_complete_ms },
    };
    store(s, &done, held_rev).await;
    s.cfg.sync.changed_every.min(Duration::from_secs(5))
}

/// Page through the changes since `since`: (newest change time seen,
/// whether the pass got through every page).
async fn read_changes(s: &Syncer, since: DateTime<Utc>) -> (Option<DateTime<Utc>>, bool) {
    let ctx = CallCtx::sync(&s.pacer);
    let clock = s.cfg.clock;
    let now = move || clock.now();
    let mut cursor = String::new();
    let mut newest: Option<DateTime<Utc>> = None;
    let last_pass = s.recent.lock().expect("recent lock").clone();
    let mut this_pass = std::collections::HashMap::new();
    for _ in 0..MAX_PAGES {
        let page = match s.api.list_cards(&ctx, Some(since), &cursor, &now).await {
            Ok(p) => p,
            Err(CallError::Refused { carrier_code, .. }) if carrier_code == SINCE_TOO_OLD => {
                // The full sweep covers what came before: start from now.
                tracing::warn!(
                    "card sync: the changed-since point is too old for the carrier; continuing from now"
                );
                return (Some(s.now()), true);
            }
            Err(e) => {
                tracing::warn!(error = %e, "card sync: changed-since page failed; the pass is done again");
                s.metrics
                    .read_errors
                    .get_or_create(&s.labels("changed"))
                    .inc();
                return (newest, false);
            }
        };
        if let Some(n) = page.newest {
            newest = Some(newest.map_or(n, |m| m.max(n)));
        }
        s.report(page.reads, "changed").await;
        let mut extra = Vec::new();
        for (i, id) in page.to_read.into_iter().enumerate() {
            match page.listed.get(i) {
                // Listed again as the last pass saw it, and read then.
                Some(l) if last_pass.get(&id) == Some(l) => {
                    this_pass.insert(id, l.clone());
                }
                l => {
                    if let Some(l) = l {
                        this_pass.insert(id.clone(), l.clone());
                    }
                    extra.push(SyncCard {
                        id,
                        ..SyncCard::default()
                    });
                }
            }
        }
        s.read_and_report(&extra, "changed").await;
        match page.next {
            Some(c) => cursor = c,
            None => {
                *s.recent.lock().expect("recent lock") = this_pass;
                return (newest, true);
            }
        }
    }
    (newest, false)
}

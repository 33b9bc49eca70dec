//! What a starting gateway finishes: every order still active (`gsl_active`)
//! gets its interrupted fan-out completed and is settled if all its items are
//! final. Safe to run on every replica at once: fan-out re-publishes are
//! de-duplicated or absorbed, settlement is a compare-and-set.
//!
//! The fan-out sweep does the same for fan-outs while the gateway runs: a
//! large order is published in the background after it is accepted, and if
//! the replica doing it dies, another replica must finish it without waiting
//! for a restart. Every `GSL_FANOUT_SWEEP_SECS` each replica takes, from its
//! order index, the processing orders whose fan-out is not recorded done,
//! created more than `GSL_FANOUT_STALE_SECS` ago and not its own, and
//! finishes them.

use crate::core::Core;
use crate::error::ApiError;
use crate::fanout::finish_fanout_if_needed;
use crate::lifecycle::settle;
use futures::StreamExt;
use std::sync::Arc;
use tracing::{info, warn};

pub async fn run(core: &Core) -> Result<usize, ApiError> {
    let mut keys = core.store.b.active.keys().await.map_err(ApiError::busy)?;
    let mut ids = Vec::new();
    while let Some(k) = keys.next().await {
        if let Ok(id) = k.map_err(ApiError::busy)?.parse::<u64>() {
            ids.push(id);
        }
    }
    for id in &ids {
        let Some(rec) = core.store.order(*id).await? else {
            // The order record was never committed: the client's retry recreates it.
            continue;
        };
        if let Err(e) = finish_fanout_if_needed(core, &rec).await {
            warn!(work_order_id = id, error = %e, "recovery could not finish a fan-out");
            continue;
        }
        settle(core, *id).await?;
    }
    if !ids.is_empty() {
        info!(orders = ids.len(), "recovery checked active work orders");
    }
    Ok(ids.len())
}

/// One sweep: finish the fan-outs nobody is finishing. Returns how many it took over.
pub async fn sweep(core: &Core) -> Result<usize, ApiError> {
    let stale = chrono::Duration::from_std(core.cfg.fanout_stale).unwrap_or_default();
    let before = chrono::Utc::now() - stale;
    let mut taken = 0;
    for id in core.index.unfinished_fanouts(before).await? {
        if core.fanning.lock().expect("fanning set").contains(&id) {
            continue;
        }
        let Some(rec) = core.store.order(id).await? else {
            continue;
        };
        if rec.fanout_done {
            continue;
        }
        warn!(work_order_id = id, "taking over a fan-out nobody finished");
        finish_fanout_if_needed(core, &rec).await?;
        taken += 1;
    }
    Ok(taken)
}

/// Sweep every `GSL_FANOUT_SWEEP_SECS` until the gateway stops.
pub fn spawn_sweeper(core: Arc<Core>, stop: gsl_telemetry::shutdown::Listener) {
    let period = core.cfg.fanout_sweep;
    tokio::spawn(stop.every(period, false, move || {
        let core = core.clone();
        async move {
            if let Err(e) = sweep(&core).await {
                warn!(error = %e, "fan-out sweep failed; next time");
            }
        }
    }));
}

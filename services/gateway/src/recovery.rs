//! What a starting gateway finishes: every order still active (`gsl_active`)
//! gets its interrupted fan-out completed and is settled if all its items are
//! final. Safe to run on every replica at once: fan-out re-publishes are
//! de-duplicated or absorbed, settlement is a compare-and-set.

use crate::core::Core;
use crate::error::ApiError;
use crate::submit::{finish_fanout_if_needed, settle};
use futures::StreamExt;
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

//! The order index: every order's summary, in the card store's `orders`
//! table (`gsl_cardstore::orders`), so a gateway's memory does not grow
//! with order history. `List` filters it; per-tenant quotas count open
//! orders in it; the recovery sweep finds unfinished fan-outs in it.
//! Owned by `Core` (one handle).
//!
//! Every replica follows `wo.*` in `gsl_workorders` with an ordered
//! consumer and writes what it sees, the KV revision deciding (see
//! `orders`): an order accepted by one replica is listed by all. The
//! follower starts where the index says it has got to
//! (`order_index_position`), so a restart reads only what changed since,
//! not every order of the year.

use crate::error::ApiError;
use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use gsl_bus::codec::decode;
use gsl_bus::names;
use gsl_cardstore::CardStore;
use gsl_cardstore::orders::{IndexEntry, OrderFilter, OrderRow};
use gsl_proto::v1;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::watch;

/// The index (a handle: cheap to clone).
#[derive(Clone)]
pub struct OrderIndex {
    store: CardStore,
    /// True while the follower is current (caught up with the bucket, and
    /// its consumer alive).
    ready: watch::Receiver<bool>,
}

/// Most bucket entries applied in one transaction.
const RUN_MAX: usize = 1_000;

fn row_of(o: &v1::WorkOrder, fanout_done: bool) -> OrderRow {
    OrderRow {
        id: o.id,
        tenant: o.tenant.clone(),
        kind: o.kind,
        carriers: o.carriers.clone(),
        status: o.status,
        created_at: o
            .created_at
            .as_ref()
            .and_then(gsl_proto::convert::from_timestamp)
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
        fanout_done,
    }
}

impl OrderIndex {
    /// Start following the bucket.
    pub fn start(js: async_nats::jetstream::Context, store: CardStore) -> OrderIndex {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(follow(js, store.clone(), tx));
        OrderIndex { store, ready: rx }
    }

    /// How many of a tenant's orders are not final yet.
    pub async fn open_orders(&self, tenant: &str) -> Result<usize, ApiError> {
        let open: Vec<i32> = gsl_domain::workorder::WorkOrderStatus::ALL
            .into_iter()
            .filter(|s| !s.is_terminal())
            .map(|s| gsl_proto::convert::status_to_wire(s) as i32)
            .collect();
        Ok(self.store.count_orders(tenant, &open).await? as usize)
    }

    /// Whether the index has caught up with the bucket (and not lost its
    /// consumer since).
    pub fn is_current(&self) -> bool {
        *self.ready.borrow()
    }

    /// Record an order at once, unless the follower has already recorded
    /// it (the bucket is the authority; this only makes a new order
    /// listable without waiting for the follower).
    pub async fn note(&self, o: &v1::WorkOrder) -> Result<(), ApiError> {
        // Not known here; the follower says (the sweep only acts on what it says).
        Ok(self.store.index_order(&row_of(o, true), 0).await?)
    }

    /// Processing orders whose fan-out is not recorded done and that were
    /// created before `before`.
    pub async fn unfinished_fanouts(&self, before: DateTime<Utc>) -> Result<Vec<u64>, ApiError> {
        Ok(self
            .store
            .unfinished_fanouts(v1::WorkOrderStatus::Processing as i32, before)
            .await?)
    }

    /// Ids of the newest orders `f` selects, newest first.
    pub async fn newest(&self, f: &OrderFilter) -> Result<Vec<u64>, ApiError> {
        Ok(self.store.newest_orders(f).await?)
    }
}

/// Follow `wo.*` from the recorded position, for ever: a failed consumer
/// or store is retried after a pause, and the index reports itself not
/// current meanwhile.
async fn follow(js: async_nats::jetstream::Context, store: CardStore, ready: watch::Sender<bool>) {
    let mut failures = 0u32;
    loop {
        match follow_once(&js, &store, &ready).await {
            Ok(()) => failures = 0,
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, "order index follower stopped; starting it again");
            }
        }
        let _ = ready.send(false);
        tokio::time::sleep(Duration::from_millis(
            200 * u64::from(failures.clamp(1, 25)),
        ))
        .await;
    }
}

async fn follow_once(
    js: &async_nats::jetstream::Context,
    store: &CardStore,
    ready: &watch::Sender<bool>,
) -> Result<(), ApiError> {
    let position = store.index_position().await?;
    let stream = js
        .get_stream(format!("KV_{}", names::KV_WORKORDERS))
        .await
        .map_err(ApiError::busy)?;
    let prefix = format!("$KV.{}.wo.", names::KV_WORKORDERS);
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: format!("{prefix}*"),
            deliver_policy: if position == 0 {
                DeliverPolicy::All
            } else {
                DeliverPolicy::ByStartSequence {
                    start_sequence: position + 1,
                }
            },
            ..Default::default()
        })
        .await
        .map_err(ApiError::busy)?;
    if consumer.cached_info().num_pending == 0 {
        let _ = ready.send(true);
    }
    let msgs = consumer.messages().await.map_err(ApiError::busy)?;
    // What has arrived is applied together (one transaction per run, see
    // `CardStore::index_orders`), an order's newest entry winning.
    let mut runs = msgs.ready_chunks(RUN_MAX);
    while let Some(run) = runs.next().await {
        let mut newest: HashMap<u64, IndexEntry> = HashMap::with_capacity(run.len());
        let (mut through, mut pending) = (0u64, 0u64);
        for m in run {
            let m = m.map_err(ApiError::busy)?;
            let info = m.info().map_err(ApiError::busy)?;
            (through, pending) = (info.stream_sequence, info.pending);
            let Some(id) = m
                .subject
                .strip_prefix(prefix.as_str())
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            let removed = m
                .headers
                .as_ref()
                .and_then(|h| h.get("KV-Operation"))
                .is_some_and(|v| v.as_str() == "DEL" || v.as_str() == "PURGE");
            if removed {
                newest.insert(id, IndexEntry::Remove(id, through));
            } else if let Ok(rec) = decode::<v1::OrderRecord>("OrderRecord", &m.payload)
                && let Some(o) = rec.order.as_ref()
            {
                newest.insert(id, IndexEntry::Put(row_of(o, rec.fanout_done), through));
            }
        }
        let entries: Vec<IndexEntry> = newest.into_values().collect();
        store.index_orders(&entries, through).await?;
        if pending == 0 {
            let _ = ready.send(true);
        }
    }
    Err(ApiError::busy("the order bucket's consumer ended"))
}

//! The order index: every order's summary, kept in memory by every replica
//! by watching `wo.*` in `gsl_workorders` (so an order accepted by one
//! replica is listed by all). `List` filters it; per-tenant quotas count
//! open orders in it; the recovery sweep finds unfinished fan-outs in it.
//! Owned by `Core` (one handle).

use crate::error::ApiError;
use gsl_bus::codec::decode;
use gsl_proto::v1;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// What `List` filters on.
#[derive(Debug, Clone)]
pub struct Summary {
    pub tenant: Arc<str>,
    pub kind: i32,
    pub carriers: Vec<i32>,
    pub status: i32,
    pub created: i64,
    /// Every item is on the work stream (see `OrderRecord.fanout_done`).
    pub fanout_done: bool,
}

/// Every order's summary, newest first by id.
#[derive(Clone)]
pub struct OrderIndex {
    orders: Arc<RwLock<BTreeMap<u64, Summary>>>,
    /// True while the index is current (see `gsl_bus::kv::spawn_mirror`).
    ready: tokio::sync::watch::Receiver<bool>,
}

impl OrderIndex {
    /// Follow `wo.*` in the bucket, from the beginning.
    pub async fn start(
        workorders: &async_nats::jetstream::kv::Store,
    ) -> Result<OrderIndex, ApiError> {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let idx = OrderIndex {
            orders: Arc::default(),
            ready: rx,
        };
        let orders = idx.orders.clone();
        let retained = idx.orders.clone();
        gsl_bus::kv::spawn_mirror(
            workorders.clone(),
            "wo.*",
            move |e| {
                let Some(id) = e
                    .key
                    .strip_prefix("wo.")
                    .and_then(|s| s.parse::<u64>().ok())
                else {
                    return;
                };
                if e.operation != async_nats::jetstream::kv::Operation::Put {
                    orders.write().expect("index lock").remove(&id);
                    return;
                }
                if let Ok(rec) = decode::<v1::OrderRecord>("OrderRecord", &e.value)
                    && let Some(o) = rec.order
                {
                    orders.write().expect("index lock").insert(
                        id,
                        Summary {
                            tenant: o.tenant.into(),
                            kind: o.kind,
                            carriers: o.carriers,
                            status: o.status,
                            created: o.created_at.map(|t| t.seconds).unwrap_or_default(),
                            fanout_done: rec.fanout_done,
                        },
                    );
                }
            },
            move |seen| {
                retained
                    .write()
                    .expect("index lock")
                    .retain(|id, _| seen.contains(&format!("wo.{id}")));
            },
            tx,
        );
        Ok(idx)
    }

    /// How many of a tenant's orders are not final yet.
    pub fn open_orders(&self, tenant: &str) -> usize {
        self.orders
            .read()
            .expect("index lock")
            .values()
            .filter(|s| &*s.tenant == tenant && !gsl_proto::convert::status_is_terminal(s.status))
            .count()
    }

    /// Whether the index has caught up with the bucket (and not lost its
    /// watch since).
    pub fn is_current(&self) -> bool {
        *self.ready.borrow()
    }

    /// Record an order at once, unless the watch has already delivered it
    /// (the watch is the authority; this only makes a new order listable
    /// without waiting for it).
    pub fn note(&self, o: &v1::WorkOrder) {
        self.orders
            .write()
            .expect("index lock")
            .entry(o.id)
            .or_insert_with(|| Summary {
                tenant: o.tenant.as_str().into(),
                kind: o.kind,
                carriers: o.carriers.clone(),
                status: o.status,
                created: o.created_at.map(|t| t.seconds).unwrap_or_default(),
                // Not known here; the watch says (the sweep only acts on what it says).
                fanout_done: true,
            });
    }

    /// Processing orders whose fan-out is not recorded done and that were
    /// created before `before` (unix seconds).
    pub fn unfinished_fanouts(&self, before: i64) -> Vec<u64> {
        self.orders
            .read()
            .expect("index lock")
            .iter()
            .filter(|(_, s)| {
                !s.fanout_done
                    && s.created < before
                    && s.status == v1::WorkOrderStatus::Processing as i32
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// Ids of the newest orders (below `before`, when given) that `keep`
    /// accepts, newest first, at most `n`.
    pub fn newest(
        &self,
        before: Option<u64>,
        n: usize,
        keep: impl Fn(u64, &Summary) -> bool,
    ) -> Vec<u64> {
        let m = self.orders.read().expect("index lock");
        let range = match before {
            Some(b) => m.range(..b),
            None => m.range(..),
        };
        range
            .rev()
            .filter(|(id, s)| keep(**id, s))
            .map(|(id, _)| *id)
            .take(n)
            .collect()
    }
}

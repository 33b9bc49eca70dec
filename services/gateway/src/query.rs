//! Queries: get, list, list items, a card's history.
//!
//! `List` filters an in-memory index of order summaries that every replica
//! keeps by watching `wo.*` in `gsl_workorders` (so an order accepted by one
//! replica is listed by all). A card's history reads the events of that card
//! from `GSL_EVENTS` by subject (`gsl.evt.<tenant>.*.<card>`), kept one year.

use crate::core::Core;
use crate::error::ApiError;
use crate::store::{CHUNK, FAILED, PROCESSING, SUCCEEDED};
use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use futures::StreamExt;
use gsl_bus::codec::decode;
use gsl_bus::names;
use gsl_domain::ErrorCode;
use gsl_domain::ids::CardId;
use gsl_proto::{convert, v1};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

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
}

fn page_size(requested: u32, default: u32) -> usize {
    match requested {
        0 => default as usize,
        n => n.clamp(1, 500) as usize,
    }
}

fn parse_token(t: &str) -> Result<Option<u64>, ApiError> {
    if t.is_empty() {
        return Ok(None);
    }
    t.parse()
        .map(Some)
        .map_err(|_| ApiError::bad("page_token is not one this server gave out"))
}

pub async fn get(core: &Core, tenant: &str, id: u64) -> Result<v1::WorkOrder, ApiError> {
    let rec = core.order_of(tenant, id).await?;
    core.with_counts(&rec).await
}

pub async fn list(
    core: &Core,
    index: &OrderIndex,
    tenant: &str,
    req: v1::ListRequest,
) -> Result<v1::ListResponse, ApiError> {
    let size = page_size(req.page_size, 50);
    let before = parse_token(&req.page_token)?;
    let card_orders: Option<Vec<u64>> = if req.card.is_empty() {
        None
    } else {
        Some(
            card_events(core, tenant, &req.card)
                .await?
                .into_keys()
                .collect(),
        )
    };
    let after_t = req.created_after.map(|t| t.seconds);
    let before_t = req.created_before.map(|t| t.seconds);
    let ids: Vec<u64> = {
        let m = index.orders.read().expect("index lock");
        let range = match before {
            Some(b) => m.range(..b),
            None => m.range(..),
        };
        range
            .rev()
            .filter(|(id, s)| {
                &*s.tenant == tenant
                    && (req.status == 0 || s.status == req.status)
                    && (req.operation == 0 || s.kind == req.operation)
                    && (req.carrier == 0 || s.carriers.contains(&req.carrier))
                    && after_t.is_none_or(|t| s.created >= t)
                    && before_t.is_none_or(|t| s.created < t)
                    && card_orders.as_ref().is_none_or(|c| c.contains(id))
            })
            .map(|(id, _)| *id)
            .take(size + 1)
            .collect()
    };
    let more = ids.len() > size;
    let mut out = Vec::with_capacity(size);
    for id in ids.iter().take(size) {
        if let Some(rec) = core.store.order(*id).await? {
            out.push(core.with_counts(&rec).await?);
        }
    }
    Ok(v1::ListResponse {
        next_page_token: if more {
            out.last().map(|o| o.id.to_string()).unwrap_or_default()
        } else {
            String::new()
        },
        work_orders: out,
    })
}

pub async fn list_items(
    core: &Core,
    tenant: &str,
    req: v1::ListItemsRequest,
) -> Result<v1::ListItemsResponse, ApiError> {
    let rec = core.order_of(tenant, req.work_order_id).await?;
    let o = rec.order.clone().unwrap_or_default();
    // An order stopped before its items were sent: none of them is
    // processing any more (they never will be).
    let never_sent = never_sent(&o);
    let size = page_size(req.page_size, 100);
    let start = parse_token(&req.page_token)?.unwrap_or(0) as usize;
    let want = req.status;
    let mut picked: Vec<(usize, v1::ChunkItem, u8)> = Vec::with_capacity(size);
    let mut next = None;
    let mut c = start / CHUNK;
    'outer: while c < rec.chunks as usize {
        let chunk = core.store.chunk(o.id, c).await?;
        let progress = core.store.progress(o.id, c).await?;
        for (i, it) in chunk.items.iter().enumerate() {
            let index = c * CHUNK + i;
            if index < start {
                continue;
            }
            let mut state = progress.get(i).copied().unwrap_or(PROCESSING);
            if never_sent.is_some() && state != SUCCEEDED {
                state = FAILED;
            }
            let status = match state {
                SUCCEEDED => v1::ItemStatus::Succeeded,
                FAILED => v1::ItemStatus::Failed,
                _ => v1::ItemStatus::Processing,
            } as i32;
            if want != 0 && want != status {
                continue;
            }
            if picked.len() == size {
                next = Some(index);
                break 'outer;
            }
            picked.push((index, it.clone(), state));
        }
        c += 1;
    }
    let details = futures::future::try_join_all(picked.iter().map(|(_, it, _)| async {
        if it.refused.is_some() {
            Ok(None)
        } else {
            core.store.result(o.id, &it.card).await
        }
    }))
    .await?;
    let items = picked
        .into_iter()
        .zip(details)
        .map(|((index, it, state), detail)| {
            let mut item = detail.unwrap_or_default();
            item.index = index as u32;
            item.card = it.card.clone();
            item.carrier = it.carrier;
            item.status = match state {
                SUCCEEDED => v1::ItemStatus::Succeeded,
                FAILED => v1::ItemStatus::Failed,
                _ => v1::ItemStatus::Processing,
            } as i32;
            if let Some(p) = it.refused {
                item.problem = Some(p);
            } else if let Some(why) = never_sent
                && item.problem.is_none()
            {
                item.problem = Some(convert::problem(ErrorCode::Cancelled, why));
            }
            item
        })
        .collect();
    Ok(v1::ListItemsResponse {
        items,
        next_page_token: next.map(|n| n.to_string()).unwrap_or_default(),
    })
}

/// Why the items of an order cancelled or rejected in review were never sent.
pub fn never_sent(o: &v1::WorkOrder) -> Option<&'static str> {
    let cancelled = o.status == v1::WorkOrderStatus::Cancelled as i32;
    let rejected = o.status == v1::WorkOrderStatus::Rejected as i32
        && o.history
            .iter()
            .any(|h| h.status == v1::WorkOrderStatus::InReview as i32);
    if cancelled {
        Some("work order cancelled before its items were sent")
    } else if rejected {
        Some("work order rejected in review: its items were never sent")
    } else {
        None
    }
}

/// The latest event per work order about a card (events are in stream order).
async fn card_events(
    core: &Core,
    tenant: &str,
    card: &str,
) -> Result<HashMap<u64, v1::CardHistoryEntry>, ApiError> {
    let key = CardId::parse(card).map_err(|e| ApiError::new(e.code(), e.to_string()))?;
    let stream = core
        .js
        .get_stream(names::STREAM_EVENTS)
        .await
        .map_err(ApiError::busy)?;
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: names::card_events_filter(tenant, key.key()),
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(ApiError::busy)?;
    let mut out: HashMap<u64, v1::CardHistoryEntry> = HashMap::new();
    let pending = consumer.cached_info().num_pending;
    if pending == 0 {
        return Ok(out);
    }
    let mut msgs = consumer.messages().await.map_err(ApiError::busy)?;
    loop {
        let m = match tokio::time::timeout(Duration::from_secs(5), msgs.next()).await {
            Ok(Some(Ok(m))) => m,
            Ok(Some(Err(e))) => return Err(ApiError::busy(e)),
            Ok(None) | Err(_) => break,
        };
        let last = m.info().map(|i| i.pending == 0).unwrap_or(true);
        if let Ok(ev) = decode::<v1::WorkOrderEvent>("WorkOrderEvent", &m.payload)
            && let Some(v1::work_order_event::Event::Item(o)) = ev.event
        {
            let status = match v1::OutcomeKind::try_from(o.kind) {
                Ok(v1::OutcomeKind::Succeeded) => v1::ItemStatus::Succeeded,
                Ok(v1::OutcomeKind::Failed) => v1::ItemStatus::Failed,
                _ => v1::ItemStatus::Processing,
            };
            let entry = out.entry(ev.work_order_id).or_default();
            // A progress event never hides a final one.
            let final_seen = entry.status == v1::ItemStatus::Succeeded as i32
                || entry.status == v1::ItemStatus::Failed as i32;
            if !final_seen || status != v1::ItemStatus::Processing {
                *entry = v1::CardHistoryEntry {
                    work_order_id: ev.work_order_id,
                    operation: o.operation,
                    status: status as i32,
                    problem: o.problem,
                    at: ev.at,
                };
            }
        }
        if last {
            break;
        }
    }
    Ok(out)
}

pub async fn card_history(
    core: &Core,
    tenant: &str,
    req: v1::CardHistoryRequest,
) -> Result<v1::CardHistoryResponse, ApiError> {
    let size = page_size(req.page_size, 50);
    let before = parse_token(&req.page_token)?;
    let mut entries: Vec<v1::CardHistoryEntry> = card_events(core, tenant, &req.card)
        .await?
        .into_values()
        .filter(|e| before.is_none_or(|b| e.work_order_id < b))
        .collect();
    entries.sort_by_key(|e| std::cmp::Reverse(e.work_order_id));
    let more = entries.len() > size;
    entries.truncate(size);
    Ok(v1::CardHistoryResponse {
        next_page_token: if more {
            entries
                .last()
                .map(|e| e.work_order_id.to_string())
                .unwrap_or_default()
        } else {
            String::new()
        },
        entries,
    })
}

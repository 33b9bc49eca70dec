//! Queries: get, list, list items, a card's history.
//!
//! `List` filters the order index (`index`, owned by `Core`: a table in the
//! card store). A card's history reads the events of that card
//! from `GSL_EVENTS` by subject (`gsl.evt.<tenant>.*.<card>`), kept one year.

use crate::core::Core;
use crate::error::ApiError;
use crate::store::{CHUNK, FAILED, PROCESSING, SUCCEEDED};
use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use futures::StreamExt;
use gsl_bus::codec::decode;
use gsl_bus::names;
use gsl_cardstore::orders::OrderFilter;
use gsl_domain::ErrorCode;
use gsl_domain::ids::CardId;
use gsl_proto::{convert, v1};
use std::collections::HashMap;
use std::time::Duration;

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
                .orders
                .into_keys()
                .collect(),
        )
    };
    let nonzero = |v: i32| (v != 0).then_some(v);
    let ids = core
        .index
        .newest(&OrderFilter {
            tenant: tenant.to_owned(),
            status: nonzero(req.status),
            kind: nonzero(req.operation),
            carrier: nonzero(req.carrier),
            created_after: req.created_after.as_ref().and_then(convert::from_timestamp),
            created_before: req
                .created_before
                .as_ref()
                .and_then(convert::from_timestamp),
            ids: card_orders,
            below: before,
            limit: size + 1,
        })
        .await?;
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
    let never_sent = crate::core::never_sent(&o);
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

/// A card's events: the latest per work order, and the changes card sync
/// found at the carrier (work order 0), oldest first.
#[derive(Default)]
pub struct CardEvents {
    pub orders: HashMap<u64, v1::CardHistoryEntry>,
    pub changes: Vec<v1::CardHistoryEntry>,
}

/// A card's events (in stream order).
pub async fn card_events(core: &Core, tenant: &str, card: &str) -> Result<CardEvents, ApiError> {
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
    let mut changes = Vec::new();
    let pending = consumer.cached_info().num_pending;
    if pending == 0 {
        return Ok(CardEvents::default());
    }
    let mut msgs = consumer.messages().await.map_err(ApiError::busy)?;
    loop {
        let m = match tokio::time::timeout(Duration::from_secs(5), msgs.next()).await {
            Ok(Some(Ok(m))) => m,
            Ok(Some(Err(e))) => return Err(ApiError::busy(e)),
            Ok(None) | Err(_) => break,
        };
        let last = m.info().map(|i| i.pending == 0).unwrap_or(true);
        let ev = decode::<v1::WorkOrderEvent>("WorkOrderEvent", &m.payload).ok();
        if let Some(v1::WorkOrderEvent {
            at,
            event: Some(v1::work_order_event::Event::CardChanged(c)),
            ..
        }) = &ev
        {
            changes.push(v1::CardHistoryEntry {
                at: *at,
                changed: Some(c.clone()),
                ..Default::default()
            });
        }
        if let Some(ev) = ev
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
                    changed: None,
                };
            }
        }
        if last {
            break;
        }
    }
    Ok(CardEvents {
        orders: out,
        changes,
    })
}

pub async fn card_history(
    core: &Core,
    tenant: &str,
    req: v1::CardHistoryRequest,
) -> Result<v1::CardHistoryResponse, ApiError> {
    let size = page_size(req.page_size, 50);
    let before = parse_token(&req.page_token)?;
    let CardEvents { orders, changes } = card_events(core, tenant, &req.card).await?;
    let mut entries: Vec<v1::CardHistoryEntry> = orders
        .into_values()
        .filter(|e| before.is_none_or(|b| e.work_order_id < b))
        .collect();
    entries.sort_by_key(|e| std::cmp::Reverse(e.work_order_id));
    // The carrier's changes after the orders, newest first (on the page
    // that ends the orders).
    if entries.len() <= size {
        entries.extend(changes.into_iter().rev());
    }
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

//! Recording a new order: its item chunks and progress records, then the
//! order record (the commit point: see `store`), its status history and the
//! events of its refused items. A concurrent submit of the same key is
//! reported as [`Created::Concurrent`], never by an error text.

use crate::core::{Core, Meta, status_change};
use crate::error::ApiError;
use crate::store::{CHUNK, FAILED, PROCESSING, chunk_key, chunks_for, done_key, progress_key};
use crate::validate::{self, Validated};
use bytes::Bytes;
use chrono::Utc;
use gsl_bus::codec::encode;
use gsl_bus::names;
use gsl_bus::publish::Outgoing;
use gsl_domain::workorder::{OrderSource, WorkOrderStatus};
use gsl_proto::{convert, v1};
use md5::{Digest, Md5};
use prost::Message;
use std::sync::Arc;

/// A new order as submit has it: who, its id, the request and what
/// validation made of it.
pub struct NewOrder<'a> {
    pub tenant: &'a str,
    pub id: u64,
    pub req: &'a v1::SubmitRequest,
    pub checked: &'a validate::Checked,
    pub v: &'a Validated,
    pub source: OrderSource,
}

/// What writing an order found.
#[derive(Debug)]
pub enum Created {
    /// This submit wrote it: the record.
    New(Box<v1::OrderRecord>),
    /// Another submit of the same idempotency key is writing (or wrote)
    /// this order: answer from its record instead.
    Concurrent,
}

/// Write a new order: its item chunks and progress, then the order record
/// (the commit point), then its first events. With `takeover`, finish what
/// a first submit of the same key wrote before it died (its chunks and
/// progress stay as they are).
pub async fn create_order(
    core: &Core,
    n: &NewOrder<'_>,
    takeover: bool,
) -> Result<Created, ApiError> {
    let NewOrder {
        tenant,
        id,
        req,
        checked,
        v,
        source,
    } = *n;
    let total = v.items.len();
    let chunks = chunks_for(total);
    let now = convert::timestamp(Utc::now());
    let mut history = vec![status_change(WorkOrderStatus::InReview, "submitted")];
    let status = if v.refused as usize == total {
        // The order is kept (its items say why each was refused) and
        // rejected with the code that says so.
        history.push(status_change(
            WorkOrderStatus::Rejected,
            &format!(
                "{}: every item was refused",
                gsl_domain::ErrorCode::NothingToDo.code()
            ),
        ));
        WorkOrderStatus::Rejected
    } else if req.hold_for_review {
        WorkOrderStatus::InReview
    } else {
        history.push(status_change(
            WorkOrderStatus::Approved,
            "no review requested",
        ));
        history.push(status_change(
            WorkOrderStatus::Processing,
            "items sent to the adapters",
        ));
        WorkOrderStatus::Processing
    };
    let order = v1::WorkOrder {
        id,
        tenant: tenant.to_owned(),
        operation: Some(checked.op.clone()),
        kind: convert::kind_to_wire(checked.kind) as i32,
        carriers: v
            .carriers
            .iter()
            .map(|c| convert::carrier_to_wire(*c) as i32)
            .collect(),
        status: convert::status_to_wire(status) as i32,
        source: source.code(),
        total: total as u64,
        succeeded: 0,
        failed: if status == WorkOrderStatus::Rejected {
            total as u64
        } else {
            0
        },
        processing: 0,
        refused: v.refused,
        created_at: Some(now),
        updated_at: Some(now),
        batch_no: req.batch_no.clone(),
        idempotency_key: req.idempotency_key.clone(),
        note: req.note.clone(),
        history: history.clone(),
        traceparent: gsl_telemetry::propagate::current_traceparent().unwrap_or_default(),
    };
    let rec = v1::OrderRecord {
        order: Some(order),
        request_hash: Md5::digest(req.encode_to_vec()).to_vec(),
        chunks: chunks as u32,
        fanout_done: status != WorkOrderStatus::Processing,
    };
    // Chunks and progress first (pipelined), then the order record: the commit point.
    let store = &core.store;
    let mut writes = Vec::with_capacity(chunks * 2 + 1);
    let mut done_bits = vec![0u8; chunks.div_ceil(8)];
    for (c, slice) in v.items.chunks(CHUNK).enumerate() {
        let chunk = Arc::new(v1::ItemChunk {
            items: slice.to_vec(),
        });
        let progress: Vec<u8> = slice
            .iter()
            .map(|it| {
                if it.refused.is_some() {
                    FAILED
                } else {
                    PROCESSING
                }
            })
            .collect();
        if progress.iter().all(|b| *b != PROCESSING) {
            done_bits[c / 8] |= 1 << (c % 8);
        }
        writes.push(store.create(chunk_key(id, c), encode(chunk.as_ref())));
        writes.push(store.create(progress_key(id, c), Bytes::from(progress)));
        // Saves a small order's first report a read; a large order's chunks
        // are read once each when their reports come (not worth the memory).
        if chunks <= 2 {
            store.cache_chunk(id, c, chunk);
        }
    }
    // One chunk: its completion is the order's, no chunk bits needed.
    if chunks > 1 {
        writes.push(store.create(done_key(id), Bytes::from(done_bits)));
    }
    // Created, never overwritten: a retry racing the first submit of the
    // same key (or finishing a dead one's) keeps what the first wrote,
    // progress already flipped by reports included.
    let created = futures::future::try_join_all(writes).await?;
    if created.iter().any(|c| !c) && !takeover {
        return Ok(Created::Concurrent);
    }
    if !status.is_terminal() {
        store
            .b
            .active
            .put(id.to_string(), Bytes::new())
            .await
            .map_err(ApiError::busy)?;
    }
    if !store
        .create(crate::store::order_key(id), encode(&rec))
        .await?
    {
        return Ok(Created::Concurrent);
    }
    let sent = crate::core::items_sent(convert::status_to_wire(status) as i32);
    if sent {
        core.remember_meta(
            id,
            Arc::new(Meta {
                tenant: tenant.to_owned(),
                total: total as u64,
                chunks,
                op: checked.op.clone(),
                sent,
            }),
        );
    }
    let mut events: Vec<Outgoing> = history
        .iter()
        .map(|h| core.status_msg(tenant, id, h))
        .collect();
    events.extend(refusal_events(
        tenant,
        id,
        convert::kind_to_wire(checked.kind) as i32,
        &v.items,
    ));
    core.publish_events(events).await?;
    Ok(Created::New(Box::new(rec)))
}

/// Refused items become failed-item events, so a card's history shows the
/// orders that refused it too. Identifiers that are not valid card keys
/// cannot name a subject and are only in the order's items.
/// Refused items published as events per order, at most: the rest are in
/// the order's items (ListItems), so a junk order costs bounded event
/// storage whatever its size.
pub const MAX_REFUSAL_EVENTS: usize = 100;

fn refusal_events(tenant: &str, id: u64, kind: i32, items: &[v1::ChunkItem]) -> Vec<Outgoing> {
    let now = Some(convert::timestamp(Utc::now()));
    let mut out = Vec::new();
    for (index, it) in items.iter().enumerate() {
        if out.len() >= MAX_REFUSAL_EVENTS {
            break;
        }
        let Some(problem) = &it.refused else { continue };
        if gsl_domain::CardId::parse(&it.card)
            .map(|c| c.key() != it.card)
            .unwrap_or(true)
        {
            continue;
        }
        let ev = v1::WorkOrderEvent {
            work_order_id: id,
            tenant: tenant.to_owned(),
            at: now,
            event: Some(v1::work_order_event::Event::Item(v1::ItemOutcome {
                work_order_id: id,
                card: it.card.clone(),
                index: index as u32,
                tenant: tenant.to_owned(),
                carrier: it.carrier,
                operation: kind,
                kind: v1::OutcomeKind::Failed as i32,
                problem: Some(problem.clone()),
                at: now,
                reporter: "gateway".into(),
                ..Default::default()
            })),
        };
        out.push(Outgoing {
            subject: names::event_subject(tenant, id, &it.card),
            msg_id: Some(format!("{id}:{}:refused", it.card)),
            headers: None,
            payload: encode(&ev),
        });
    }
    out
}

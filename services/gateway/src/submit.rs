//! Submit, review (approve / reject / cancel), fan-out and settlement.
//!
//! Submit, in order:
//!
//! 1. whole-request checks;
//! 2. claim the idempotency key with an atomic KV `create`: the record's
//!    revision **is** the work-order id (unique and increasing across
//!    replicas, no extra round trip). The key was used before: the same
//!    request returns the same order, a different one is refused;
//! 3. validate every item;
//! 4. write the item chunks and progress records, then the order record (the
//!    commit point), and mark the order active;
//! 5. publish one message per valid item (many acks in flight, each with its
//!    de-duplication id) and answer only when JetStream has stored them all;
//!    an order with more than `GSL_BACKGROUND_FANOUT_OVER` (1,000) valid items
//!    is answered right after step 4, when it is already on disk in
//!    JetStream, and published in the background (a 100,000-card order is
//!    accepted in well under a second instead of waiting for 100,000 acks);
//! 6. record that the fan-out is done.
//!
//! A gateway that dies anywhere in between is finished by the client's retry
//! with the same key, by the next gateway start, or by any live replica's
//! fan-out sweep (`recovery`): the order record says what was done, so
//! nothing is lost; items already published are
//! dropped by the stream's duplicate window or, once consumed, absorbed by the
//! adapters' execution records, so nothing takes effect twice.

use crate::core::{Core, Meta, status_change};
use crate::error::ApiError;
use crate::store::{CHUNK, FAILED, PROCESSING, chunk_key, chunks_for, done_key, progress_key};
use crate::validate::{self, Validated};
use async_nats::HeaderMap;
use bytes::Bytes;
use chrono::Utc;
use gsl_bus::codec::encode;
use gsl_bus::kv;
use gsl_bus::names;
use gsl_bus::publish::{Outgoing, Pipeline};
use gsl_domain::workorder::{OrderSource, WorkOrderStatus};
use gsl_domain::{Carrier, ErrorCode};
use gsl_proto::{convert, v1};
use md5::{Digest, Md5};
use prost::Message;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::{Instrument, info, info_span, warn};

/// Refusals listed in a submit response (the rest are in ListItems).
pub const MAX_LISTED_REFUSALS: usize = 100;

fn idem_key(tenant: &str, key: &str) -> String {
    format!("{tenant}.{}", hex::encode(Md5::digest(key.as_bytes())))
}

fn source_name(s: OrderSource) -> &'static str {
    match s {
        OrderSource::Console => "console",
        OrderSource::ScheduledTask => "scheduled",
        OrderSource::PoolStopTask => "pool_stop",
        OrderSource::Api => "api",
        OrderSource::BusIntake => "intake",
    }
}

/// Submit a work order for a tenant.
pub async fn submit(
    core: &Arc<Core>,
    tenant: &str,
    req: v1::SubmitRequest,
    source: OrderSource,
) -> Result<v1::SubmitResponse, ApiError> {
    let started = std::time::Instant::now();
    let r = submit_inner(core, tenant, req, source).await;
    core.metrics
        .submit_seconds
        .observe(started.elapsed().as_secs_f64());
    if let Err(e) = &r {
        core.metrics
            .orders_refused
            .get_or_create(&crate::core::CodeLabels {
                code: e.code.code().into(),
            })
            .inc();
    }
    r
}

async fn submit_inner(
    core: &Arc<Core>,
    tenant: &str,
    req: v1::SubmitRequest,
    source: OrderSource,
) -> Result<v1::SubmitResponse, ApiError> {
    let checked = validate::check_request(&req)?;
    let hash = Md5::digest(req.encode_to_vec()).to_vec();
    let key = idem_key(tenant, &req.idempotency_key);
    // A replay of an existing order is always answered; a new order counts
    // against the tenant's quota of open orders.
    let known = kv::read(&core.store.b.idempotency, &key).await?.is_some();
    if !known && core.index.open_orders(tenant) >= core.cfg.tenant_max_open_orders {
        return Err(ApiError::new(
            ErrorCode::TenantQuotaExceeded,
            format!(
                "{} open work orders: wait for some to finish (GSL_TENANT_MAX_OPEN_ORDERS)",
                core.cfg.tenant_max_open_orders
            ),
        ));
    }
    let (id, replay) =
        match kv::create(&core.store.b.idempotency, &key, Bytes::from(hash.clone())).await? {
            Some(rev) => (rev, false),
            None => {
                let e = kv::read(&core.store.b.idempotency, &key)
                    .await?
                    .ok_or_else(|| ApiError::busy("idempotency record vanished; retry"))?;
                if e.value.as_ref() != hash.as_slice() {
                    return Err(ApiError::new(
                        ErrorCode::IdempotencyConflict,
                        "this idempotency key was used for a different request",
                    ));
                }
                (e.revision, true)
            }
        };
    let span = info_span!("submit", work_order_id = id, operation = %checked.kind, tenant, replay);
    async move {
        if replay && let Some(rec) = core.store.order(id).await? {
            let ours = core.fanning.lock().expect("fanning set").contains(&id);
            if !ours {
                finish_fanout_if_needed(core, &rec).await?;
            }
            return response_for(core, &rec, true).await;
        }
        let t_validate = std::time::Instant::now();
        let v = if checked.kind.is_directional() {
            let mut batch = core.registry.batch(tenant, &req.batch_no).await?;
            // Entries of earlier orders still waiting unclaimed in the back
            // office count against the limits too (claimed ones are in the
            // batch already, as configuring).
            batch
                .entries
                .extend(crate::backoffice::pending_entries(core, &batch).await?);
            validate::validate_directional(&batch, &checked)
        } else {
            core.registry.wait_loaded().await;
            validate::validate_cards(&core.registry, tenant, &checked, &req.cards)
        };
        let validate_ms = t_validate.elapsed().as_millis() as u64;
        let t_persist = std::time::Instant::now();
        let rec = match create_order(core, tenant, id, &req, &checked, &v, source, false).await {
            Ok(rec) => rec,
            Err(e) if e.message == CONCURRENT_SUBMIT => {
                if let Some(r) = replay_when_recorded(core, id).await? {
                    return Ok(r);
                }
                // The first submit died before its commit point: finish it
                // on what it wrote (its chunks and progress stay as they are).
                match create_order(core, tenant, id, &req, &checked, &v, source, true).await {
                    Ok(rec) => rec,
                    Err(e) if e.message == CONCURRENT_SUBMIT => {
                        return replay_when_recorded(core, id)
                            .await?
                            .ok_or_else(|| ApiError::busy("order record not readable yet; retry"));
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        let persist_ms = t_persist.elapsed().as_millis() as u64;
        let t_fanout = std::time::Instant::now();
        for it in &v.items {
            if let Some(p) = &it.refused {
                core.metrics
                    .items_refused
                    .get_or_create(&crate::core::CodeLabels {
                        code: p.code.clone(),
                    })
                    .inc();
            }
        }
        core.metrics
            .orders_accepted
            .get_or_create(&crate::core::OpLabels {
                operation: checked.kind.as_str().into(),
                carrier: match v.carriers.as_slice() {
                    [one] => one.as_str().into(),
                    [] => "none".into(),
                    _ => "mixed".into(),
                },
                source: source_name(source).into(),
            })
            .inc();
        let response = build_response(&rec, &v.items, replay);
        let o = rec.order.clone().unwrap_or_default();
        let valid = o.total - o.refused;
        let background = valid > core.cfg.background_fanout_over as u64;
        if o.status == v1::WorkOrderStatus::Processing as i32 {
            if background {
                // Recorded on disk already (chunks, then the order record):
                // answer now, publish in the background (module doc).
                spawn_fanout(core.clone(), rec.clone(), v.items);
            } else {
                fanout(core, &rec, &v.items, |_| false).await?;
                mark_fanout_done(core, id).await;
            }
        }
        info!(
            total = o.total,
            refused = o.refused,
            status = o.status,
            validate_ms,
            persist_ms,
            fanout_ms = t_fanout.elapsed().as_millis() as u64,
            background,
            "work order accepted"
        );
        Ok(response)
    }
    .instrument(span)
    .await
}

/// Another submit of the same idempotency key is writing (or wrote) this
/// order: answer from its record instead.
const CONCURRENT_SUBMIT: &str = "another submit of this idempotency key is recording the order";

/// A retry that met the first submit of its key half-way: wait (briefly)
/// for the first's order record and answer from it, never redo the order.
/// `None`: no record came (the first died before its commit point).
async fn replay_when_recorded(
    core: &Arc<Core>,
    id: u64,
) -> Result<Option<v1::SubmitResponse>, ApiError> {
    let deadline = tokio::time::Instant::now() + CONCURRENT_SUBMIT_WAIT;
    loop {
        if let Some(rec) = core.store.order(id).await? {
            if !core.fanning.lock().expect("fanning set").contains(&id) {
                finish_fanout_if_needed(core, &rec).await?;
            }
            return response_for(core, &rec, true).await.map(Some);
        }
        if tokio::time::Instant::now() > deadline {
            return Ok(None);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// How long a retry waits for a concurrent first submit to commit.
const CONCURRENT_SUBMIT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

fn build_response(
    rec: &v1::OrderRecord,
    items: &[v1::ChunkItem],
    replayed: bool,
) -> v1::SubmitResponse {
    let mut by_code: BTreeMap<String, u64> = BTreeMap::new();
    let mut listed = Vec::new();
    for (i, it) in items.iter().enumerate() {
        if let Some(p) = &it.refused {
            *by_code.entry(p.code.clone()).or_default() += 1;
            if listed.len() < MAX_LISTED_REFUSALS {
                listed.push(v1::RefusedItem {
                    index: i as u32,
                    card: it.card.clone(),
                    problem: Some(p.clone()),
                });
            }
        }
    }
    let order = rec.order.clone().unwrap_or_default();
    v1::SubmitResponse {
        refused: order.refused,
        work_order: Some(order),
        replayed,
        refused_by_code: by_code.into_iter().collect(),
        refusals: listed,
    }
}

/// The response for an order that exists (a replayed submit).
async fn response_for(
    core: &Core,
    rec: &v1::OrderRecord,
    replayed: bool,
) -> Result<v1::SubmitResponse, ApiError> {
    let id = rec.order.as_ref().map(|o| o.id).unwrap_or_default();
    let mut items = Vec::new();
    for c in 0..rec.chunks as usize {
        items.extend(core.store.chunk(id, c).await?.items.iter().cloned());
    }
    let mut resp = build_response(rec, &items, replayed);
    resp.work_order = Some(core.with_counts(rec).await?);
    Ok(resp)
}

#[allow(clippy::too_many_arguments)]
async fn create_order(
    core: &Core,
    tenant: &str,
    id: u64,
    req: &v1::SubmitRequest,
    checked: &validate::Checked,
    v: &Validated,
    source: OrderSource,
    takeover: bool,
) -> Result<v1::OrderRecord, ApiError> {
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
        return Err(ApiError::new(ErrorCode::Busy, CONCURRENT_SUBMIT));
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
        return Err(ApiError::new(ErrorCode::Busy, CONCURRENT_SUBMIT));
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
    Ok(rec)
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

/// Publish every valid item except those `skip` names (by index). Returns
/// how many were sent.
pub async fn fanout(
    core: &Core,
    rec: &v1::OrderRecord,
    items: &[v1::ChunkItem],
    skip: impl Fn(usize) -> bool,
) -> Result<u64, ApiError> {
    let o = rec
        .order
        .as_ref()
        .ok_or_else(|| ApiError::busy("order record without order"))?;
    let span = info_span!("fanout", work_order_id = o.id, items = items.len());
    async {
        let headers = item_headers(&o.tenant, items.len(), core.cfg.trace_items_per_order);
        let op = o.operation.clone().unwrap_or_default();
        let kind = convert::operation_kind(&op)
            .ok_or_else(|| ApiError::busy("order without operation"))?;
        // Subjects per carrier, computed once.
        let subjects: Vec<String> = Carrier::ALL
            .iter()
            .map(|c| names::work_subject(*c, kind))
            .collect();
        let mut p = Pipeline::new(&core.js, core.cfg.fanout_window);
        // Bundle k of a carrier: its valid items with index k*size ..
        // (k+1)*size-1. Fixed ranges keep a bundle's message id stable when
        // a finished fan-out is re-published without its final items.
        let size = core.cfg.bundle_size.max(1);
        let mut open: Vec<Vec<v1::WorkItem>> = vec![Vec::new(); Carrier::ALL.len()];
        let mut sent_items = 0u64;
        let mut range = 0usize;
        for (index, it) in items.iter().enumerate() {
            if it.refused.is_some() || skip(index) {
                continue;
            }
            if index / size != range {
                sent_items += flush(&mut p, o.id, range, &mut open, &headers, &subjects).await?;
                range = index / size;
            }
            let carrier: Carrier = convert::carrier_from_wire(it.carrier)
                .map_err(|e| ApiError::busy(e.to_string()))?;
            open[carrier.index()].push(v1::WorkItem {
                work_order_id: o.id,
                card: it.card.clone(),
                index: index as u32,
                tenant: o.tenant.clone(),
                carrier: it.carrier,
                operation: Some(it.operation.clone().unwrap_or_else(|| op.clone())),
                submitted_at: o.created_at,
                batch_no: o.batch_no.clone(),
            });
        }
        sent_items += flush(&mut p, o.id, range, &mut open, &headers, &subjects).await?;
        p.finish().await?;
        core.metrics.items_published.inc_by(sent_items);
        Ok(sent_items)
    }
    .instrument(span)
    .await
}

/// Publish the open bundles of range `k`, one per carrier; how many items.
async fn flush(
    p: &mut Pipeline<'_>,
    id: u64,
    k: usize,
    open: &mut [Vec<v1::WorkItem>],
    headers: &HeaderMap,
    subjects: &[String],
) -> Result<u64, ApiError> {
    let mut n = 0;
    for c in Carrier::ALL {
        let members = std::mem::take(&mut open[c.index()]);
        n += members.len() as u64;
        if let Some(m) = work_message(id, k, c, members, headers, subjects) {
            p.push(m).await?;
        }
    }
    Ok(n)
}

/// The work message of bundle `k` of one carrier: a plain `WorkItem` for one
/// member, a `WorkBundle` for several, nothing for none.
fn work_message(
    id: u64,
    k: usize,
    c: Carrier,
    mut members: Vec<v1::WorkItem>,
    headers: &HeaderMap,
    subjects: &[String],
) -> Option<Outgoing> {
    let subject = subjects[c.index()].clone();
    match members.len() {
        0 => None,
        1 => {
            let wi = members.pop()?;
            Some(Outgoing {
                subject,
                msg_id: Some(names::work_msg_id(id, &wi.card)),
                headers: Some(headers.clone()),
                payload: encode(&wi),
            })
        }
        n => {
            let mut h = headers.clone();
            h.insert(names::headers::BUNDLE, n.to_string().as_str());
            Some(Outgoing {
                subject,
                msg_id: Some(names::bundle_msg_id(id, k, c)),
                headers: Some(h),
                payload: encode(&v1::WorkBundle { items: members }),
            })
        }
    }
}

/// Headers of every item of an order. A small order's items are in the
/// order's trace; a large order's items each start their own trace at the
/// adapter, linked to the order's (one trace of 100,000 spans helps nobody,
/// and sampling can then keep a share of the items).
pub fn item_headers(tenant: &str, items: usize, per_order_limit: usize) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if items <= per_order_limit {
        gsl_telemetry::propagate::inject_nats(&mut headers);
    } else if let Some(tp) = gsl_telemetry::propagate::current_traceparent() {
        headers.insert(gsl_telemetry::propagate::ORDER_TRACEPARENT, tp.as_str());
    }
    headers.insert(names::headers::TENANT, tenant);
    headers
}

/// Publish a large order's items in the background. A failed attempt is
/// tried again twice; after that (or if this gateway dies) the fan-out
/// sweep of any replica finishes it (`recovery::sweep`).
/// Between attempts of a background fan-out: 1 s, 2 s, 4 s.
const FANOUT_BACKOFF: gsl_backoff::Backoff =
    gsl_backoff::Backoff::new_const(Duration::from_secs(1), Duration::from_secs(4), 0.0);

fn spawn_fanout(core: Arc<Core>, rec: v1::OrderRecord, items: Vec<v1::ChunkItem>) {
    let id = rec.order.as_ref().map(|o| o.id).unwrap_or_default();
    core.fanning.lock().expect("fanning set").insert(id);
    let span = tracing::Span::current();
    tokio::spawn(
        async move {
            for attempt in 0..3u32 {
                match fanout(&core, &rec, &items, |_| false).await {
                    Ok(_) => {
                        mark_fanout_done(&core, id).await;
                        break;
                    }
                    Err(e) => {
                        warn!(work_order_id = id, attempt, error = %e, "background fan-out failed");
                        tokio::time::sleep(FANOUT_BACKOFF.delay(attempt + 1)).await;
                    }
                }
            }
            core.fanning.lock().expect("fanning set").remove(&id);
        }
        .instrument(span),
    );
}

async fn mark_fanout_done(core: &Core, id: u64) {
    let r = core
        .store
        .update_order(id, |r| {
            if r.fanout_done {
                None
            } else {
                r.fanout_done = true;
                Some(())
            }
        })
        .await;
    if let Err(e) = r {
        // Harmless: recovery re-publishes, and duplicates are absorbed.
        warn!(work_order_id = id, error = %e, "could not record the end of the fan-out");
    }
}

/// Finish an interrupted fan-out: publish the items still processing.
pub async fn finish_fanout_if_needed(core: &Core, rec: &v1::OrderRecord) -> Result<(), ApiError> {
    let o = rec
        .order
        .as_ref()
        .ok_or_else(|| ApiError::busy("order record without order"))?;
    if rec.fanout_done || o.status != v1::WorkOrderStatus::Processing as i32 {
        return Ok(());
    }
    let mut items = Vec::with_capacity(o.total as usize);
    let mut progress = Vec::with_capacity(o.total as usize);
    for c in 0..rec.chunks as usize {
        items.extend(core.store.chunk(o.id, c).await?.items.iter().cloned());
        let mut p = core.store.progress(o.id, c).await?;
        p.resize(items.len() - progress.len(), PROCESSING);
        progress.extend(p);
    }
    // Items already final are not sent again.
    let n = fanout(core, rec, &items, |i| progress[i] != PROCESSING).await?;
    info!(
        work_order_id = o.id,
        republished = n,
        "finished an interrupted fan-out"
    );
    mark_fanout_done(core, o.id).await;
    Ok(())
}

/// Settle an order whose items are all final: completed or failed, once.
pub async fn settle(core: &Core, id: u64) -> Result<(), ApiError> {
    let meta = core.meta(id).await?;
    let counts = core.store.final_counts(id, meta.total, meta.chunks).await?;
    let Some(final_status) =
        gsl_domain::workorder::settle(counts.total, counts.succeeded, counts.failed)
    else {
        return Ok(());
    };
    let change = status_change(final_status, "every item has a final outcome");
    let updated = core
        .store
        .update_order(id, |r| {
            let o = r.order.as_mut()?;
            if o.status != v1::WorkOrderStatus::Processing as i32 {
                return None;
            }
            o.status = convert::status_to_wire(final_status) as i32;
            o.succeeded = counts.succeeded;
            o.failed = counts.failed;
            o.processing = 0;
            o.updated_at = change.at;
            o.history.push(change.clone());
            Some(())
        })
        .await?;
    if updated.is_some() {
        // The settled counts are the last word: no periodic counts event after them.
        core.dirty.lock().expect("dirty set").remove(&id);
        core.publish_events(vec![
            core.status_msg(&meta.tenant, id, &change),
            core.counts_msg(&meta.tenant, id, counts),
        ])
        .await?;
        let _ = core.store.b.active.delete(id.to_string()).await;
        info!(work_order_id = id, status = ?final_status, succeeded = counts.succeeded, failed = counts.failed, "work order settled");
    }
    Ok(())
}

/// Review actions on an order still in review.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Review {
    Approve,
    Reject,
    Cancel,
}

pub async fn review(
    core: &Core,
    tenant: &str,
    id: u64,
    action: Review,
    reason: &str,
) -> Result<v1::WorkOrder, ApiError> {
    core.order_of(tenant, id).await?;
    let changes: Vec<v1::StatusChange> = match action {
        Review::Approve => vec![
            status_change(
                WorkOrderStatus::Approved,
                if reason.is_empty() {
                    "approved"
                } else {
                    reason
                },
            ),
            status_change(WorkOrderStatus::Processing, "items sent to the adapters"),
        ],
        Review::Reject => vec![status_change(
            WorkOrderStatus::Rejected,
            if reason.is_empty() {
                "rejected by a reviewer"
            } else {
                reason
            },
        )],
        Review::Cancel => vec![status_change(
            WorkOrderStatus::Cancelled,
            "cancelled by the client",
        )],
    };
    let last = changes.last().cloned().expect("one change at least");
    let updated = core
        .store
        .update_order(id, |r| {
            let o = r.order.as_mut()?;
            if o.status != v1::WorkOrderStatus::InReview as i32 {
                return None;
            }
            o.status = last.status;
            o.updated_at = last.at;
            o.history.extend(changes.iter().cloned());
            if action == Review::Approve {
                r.fanout_done = false;
            }
            Some(())
        })
        .await?;
    if updated.is_none() {
        return Err(ApiError::new(
            ErrorCode::NotInReview,
            "only an order still in review can be approved, rejected or cancelled",
        ));
    }
    for c in &changes {
        core.publish_status(tenant, id, c).await?;
    }
    let rec = core.order_of(tenant, id).await?;
    match action {
        Review::Approve => finish_fanout_if_needed(core, &rec).await?,
        Review::Reject | Review::Cancel => {
            let _ = core.store.b.active.delete(id.to_string()).await;
        }
    }
    core.with_counts(&core.order_of(tenant, id).await?).await
}

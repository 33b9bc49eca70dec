//! Submit: accepting an order. (Recording it is `record`, publishing its
//! items `fanout`, what happens to it afterwards `lifecycle`.)
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

use crate::core::Core;
use crate::error::ApiError;
use crate::fanout::{fanout, finish_fanout_if_needed, mark_fanout_done, spawn_fanout};
/// Refused items published as events per order (see `record`).
pub use crate::record::MAX_REFUSAL_EVENTS;
use crate::record::{Created, NewOrder, create_order};
use crate::validate;
use bytes::Bytes;
use gsl_bus::kv;
use gsl_domain::ErrorCode;
use gsl_domain::workorder::OrderSource;
use gsl_proto::v1;
use md5::{Digest, Md5};
use prost::Message;
use std::collections::BTreeMap;
use std::sync::Arc;
use tracing::{Instrument, info, info_span};

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
    if !known && core.index.open_orders(tenant).await? >= core.cfg.tenant_max_open_orders {
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
            validate::validate_cards(&core.registry, tenant, &checked, &req.cards).await?
        };
        let validate_ms = t_validate.elapsed().as_millis() as u64;
        let t_persist = std::time::Instant::now();
        let n = NewOrder {
            tenant,
            id,
            req: &req,
            checked: &checked,
            v: &v,
            source,
        };
        let rec = match create_order(core, &n, false).await? {
            Created::New(rec) => *rec,
            Created::Concurrent => {
                if let Some(r) = replay_when_recorded(core, id).await? {
                    return Ok(r);
                }
                // The first submit died before its commit point: finish it
                // on what it wrote (its chunks and progress stay as they are).
                match create_order(core, &n, true).await? {
                    Created::New(rec) => *rec,
                    Created::Concurrent => {
                        return replay_when_recorded(core, id)
                            .await?
                            .ok_or_else(|| ApiError::busy("order record not readable yet; retry"));
                    }
                }
            }
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

//! Fan-out: an order's valid items onto the work stream, as plain
//! `WorkItem`s or `WorkBundle`s of up to `GSL_BUNDLE_SIZE` items per carrier
//! in fixed index ranges (stable message ids, so a re-published fan-out is
//! de-duplicated); large orders in the background, finished by any replica's
//! sweep if this one dies.

use crate::core::Core;
use crate::error::ApiError;
use crate::store::PROCESSING;
use async_nats::HeaderMap;
use gsl_bus::codec::encode;
use gsl_bus::names;
use gsl_bus::publish::{Outgoing, Pipeline};
use gsl_domain::Carrier;
use gsl_proto::{convert, v1};
use std::sync::Arc;
use std::time::Duration;
use tracing::{Instrument, info, info_span, warn};

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
                card_facts: it.card_facts.clone(),
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

pub fn spawn_fanout(core: Arc<Core>, rec: v1::OrderRecord, items: Vec<v1::ChunkItem>) {
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

pub async fn mark_fanout_done(core: &Core, id: u64) {
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

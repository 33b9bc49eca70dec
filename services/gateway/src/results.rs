//! The internal Results API: adapters report item outcomes.
//!
//! Idempotent per item and outcome kind. A final outcome flips the item's
//! progress byte by compare-and-set (see `store`); only the report that flips
//! it counts, so a report repeated after a lost answer, a redelivered item,
//! or two gateways receiving the same outcome change nothing. The detail
//! record and the event are written on repeats too (both idempotent), so a
//! gateway that died between the flip and the event is completed by the
//! adapter's retry.

use crate::core::{Core, ReportLabels};
use crate::error::ApiError;
use crate::lifecycle::settle;
use crate::store::{CHUNK, FAILED, SUCCEEDED};
use gsl_domain::ErrorCode;
use gsl_proto::v1;
use tracing::{Instrument, info_span};

fn kind_name(k: v1::OutcomeKind) -> &'static str {
    match k {
        v1::OutcomeKind::Succeeded => "succeeded",
        v1::OutcomeKind::Failed => "failed",
        v1::OutcomeKind::CarrierAccepted => "carrier_accepted",
        v1::OutcomeKind::SlaBreached => "sla_breached",
        v1::OutcomeKind::Unspecified => "unspecified",
    }
}

/// Record one outcome from the adapter of `carrier` (`None`: any carrier,
/// tests only). Returns whether it was a repeat.
pub async fn report(
    core: &Core,
    o: v1::ItemOutcome,
    carrier: Option<gsl_domain::Carrier>,
) -> Result<bool, ApiError> {
    let kind = v1::OutcomeKind::try_from(o.kind)
        .ok()
        .filter(|k| *k != v1::OutcomeKind::Unspecified)
        .ok_or_else(|| ApiError::bad("outcome kind is required"))?;
    let span = info_span!(
        "report",
        work_order_id = o.work_order_id,
        card = %o.card,
        outcome = kind_name(kind),
        error_code = o.problem.as_ref().map(|p| p.code.as_str()).unwrap_or(""),
    );
    let dup = report_inner(core, o, kind, carrier)
        .instrument(span)
        .await?;
    core.metrics
        .reports
        .get_or_create(&ReportLabels {
            kind: kind_name(kind).into(),
            duplicate: dup.to_string(),
        })
        .inc();
    Ok(dup)
}

async fn report_inner(
    core: &Core,
    o: v1::ItemOutcome,
    kind: v1::OutcomeKind,
    carrier: Option<gsl_domain::Carrier>,
) -> Result<bool, ApiError> {
    let id = o.work_order_id;
    let meta = core.meta(id).await?;
    if !meta.sent {
        return Err(ApiError::new(
            ErrorCode::PermissionDenied,
            "the order's items were not sent to any adapter (held for review, cancelled or rejected)",
        ));
    }
    let index = o.index as usize;
    if index as u64 >= meta.total {
        return Err(ApiError::bad(format!(
            "index {index} is outside the order ({} items)",
            meta.total
        )));
    }
    let chunk = core.store.chunk(id, index / CHUNK).await?;
    let item = chunk
        .items
        .get(index % CHUNK)
        .filter(|it| it.card == o.card)
        .ok_or_else(|| {
            ApiError::bad(format!("item {index} of order {id} is not card {}", o.card))
        })?;
    if item.refused.is_some() {
        return Err(ApiError::bad(
            "that item was refused at validation and never sent",
        ));
    }
    if let Some(c) = carrier
        && item.carrier != gsl_proto::convert::carrier_to_wire(c) as i32
    {
        return Err(ApiError::new(
            ErrorCode::PermissionDenied,
            format!("the {c} adapter may report only {c} items"),
        ));
    }
    let card = o.card.clone();
    let event = v1::work_order_event::Event::Item(o.clone());
    let msg_id = format!("{id}:{card}:{}", o.kind);
    match kind {
        v1::OutcomeKind::Succeeded | v1::OutcomeKind::Failed => {
            let state = if kind == v1::OutcomeKind::Succeeded {
                SUCCEEDED
            } else {
                FAILED
            };
            let (set, chunk_complete) = core.store.set_final(id, index, state).await?;
            let status = if state == SUCCEEDED {
                v1::ItemStatus::Succeeded
            } else {
                v1::ItemStatus::Failed
            };
            core.store
                .update_result(id, &card, |it| {
                    if it.status == v1::ItemStatus::Succeeded as i32
                        || it.status == v1::ItemStatus::Failed as i32
                    {
                        return false;
                    }
                    it.index = o.index;
                    it.card = o.card.clone();
                    it.carrier = item.carrier;
                    it.status = status as i32;
                    it.problem = o.problem.clone();
                    if !o.carrier_ticket.is_empty() {
                        it.carrier_ticket = o.carrier_ticket.clone();
                    }
                    it.updated_at = o.at;
                    true
                })
                .await?;
            core.publish_event(&meta.tenant, id, Some(&card), event, Some(msg_id))
                .await?;
            if kind == v1::OutcomeKind::Succeeded {
                let op = item.operation.as_ref().unwrap_or(&meta.op);
                core.registry.apply_outcome(op, &card, o.at).await?;
            }
            if set {
                core.mark_dirty(id, &meta.tenant, meta.total);
            }
            // Also on repeats: a gateway that died between the flip and the
            // settlement is completed by the adapter's retry.
            // One chunk: its completion is the order's.
            if chunk_complete
                && (meta.chunks == 1
                    || core
                        .store
                        .mark_chunk_done(id, index / CHUNK, meta.chunks)
                        .await?)
            {
                settle(core, id).await?;
            }
            Ok(!set)
        }
        v1::OutcomeKind::CarrierAccepted | v1::OutcomeKind::SlaBreached => {
            let accepted = kind == v1::OutcomeKind::CarrierAccepted;
            let changed = core
                .store
                .update_result(id, &card, |it| {
                    if accepted {
                        // A processing item shows why it waits when that is
                        // not the carrier's own processing: a back-office request.
                        let waiting = o
                            .problem
                            .clone()
                            .filter(|p| p.code == ErrorCode::BackOfficePending.code());
                        if it.carrier_ticket == o.carrier_ticket
                            && it.sla_deadline.is_some()
                            && it.problem == waiting
                        {
                            return false;
                        }
                        it.carrier_ticket = o.carrier_ticket.clone();
                        it.sla_deadline = o.sla_deadline;
                        it.problem = waiting;
                    } else {
                        if it.sla_breached {
                            return false;
                        }
                        it.sla_breached = true;
                        if it.sla_deadline.is_none() {
                            it.sla_deadline = o.sla_deadline;
                        }
                    }
                    it.index = o.index;
                    it.card = o.card.clone();
                    it.carrier = item.carrier;
                    if it.status == v1::ItemStatus::Unspecified as i32 {
                        it.status = v1::ItemStatus::Processing as i32;
                    }
                    it.updated_at = o.at;
                    true
                })
                .await?;
            core.publish_event(&meta.tenant, id, Some(&card), event, Some(msg_id))
                .await?;
            Ok(!changed)
        }
        v1::OutcomeKind::Unspecified => unreachable!("filtered above"),
    }
}

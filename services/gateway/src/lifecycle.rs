//! An order's life after it was recorded: review (approve, reject, cancel
//! while in review) and settlement once every item is final.

use crate::core::{Core, status_change};
use crate::error::ApiError;
use crate::fanout::finish_fanout_if_needed;
use gsl_domain::ErrorCode;
use gsl_domain::workorder::WorkOrderStatus;
use gsl_proto::{convert, v1};
use tracing::info;

/// Settle an order whose items are all final: completed or failed, once.
pub async fn settle(core: &Core, id: u64) -> Result<(), ApiError> {
    let meta = core.meta(id).await?;
    let counts = core.store.final_counts(id, meta.total, meta.chunks).await?;
    let Some(final_status) =
        gsl_domain::workorder::settle(counts.total, counts.succeeded, counts.failed)
    else {
        return Ok(());
    };
    let mut change = status_change(final_status, "every item has a final outcome");
    change.counts = Some(v1::Counts {
        total: counts.total,
        succeeded: counts.succeeded,
        failed: counts.failed,
        processing: 0,
    });
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

//! Work-order and item lifecycles.
//!
//! in review (审核中) -> approved (已审核) -> processing (处理中) -> completed
//! (已完成) or failed (失败); also cancelled (已取消, only from in review) and
//! rejected (审核不通过). The project's reading of "rejected": every item was
//! refused at validation, or a reviewer rejected the order.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkOrderStatus {
    InReview,
    Approved,
    Processing,
    Completed,
    Failed,
    Cancelled,
    Rejected,
}

impl WorkOrderStatus {
    pub const ALL: [WorkOrderStatus; 7] = [
        WorkOrderStatus::InReview,
        WorkOrderStatus::Approved,
        WorkOrderStatus::Processing,
        WorkOrderStatus::Completed,
        WorkOrderStatus::Failed,
        WorkOrderStatus::Cancelled,
        WorkOrderStatus::Rejected,
    ];

    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            WorkOrderStatus::Completed
                | WorkOrderStatus::Failed
                | WorkOrderStatus::Cancelled
                | WorkOrderStatus::Rejected
        )
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            WorkOrderStatus::InReview => "in_review",
            WorkOrderStatus::Approved => "approved",
            WorkOrderStatus::Processing => "processing",
            WorkOrderStatus::Completed => "completed",
            WorkOrderStatus::Failed => "failed",
            WorkOrderStatus::Cancelled => "cancelled",
            WorkOrderStatus::Rejected => "rejected",
        }
    }

    /// The legal transitions.
    pub fn can_become(self, next: WorkOrderStatus) -> bool {
        use WorkOrderStatus::*;
        matches!(
            (self, next),
            (InReview, Approved | Cancelled | Rejected)
                | (Approved, Processing | Cancelled)
                | (Processing, Completed | Failed)
        )
    }
}

/// A card's status within an order (业务受理明细).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    Processing,
    Succeeded,
    Failed,
}

/// Where an order came from. The documentation numbers these; 7 and 8 are
/// documented, the others are the project's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderSource {
    /// 1: a user in a console (project value).
    Console,
    /// 6: a scheduled task (project value).
    ScheduledTask,
    /// 7: the pool-exhaustion stop task (documented).
    PoolStopTask,
    /// 8: user operation through the API (documented).
    Api,
    /// 100: published on the NATS intake by another service (ours).
    BusIntake,
}

impl OrderSource {
    pub const fn code(self) -> u32 {
        match self {
            OrderSource::Console => 1,
            OrderSource::ScheduledTask => 6,
            OrderSource::PoolStopTask => 7,
            OrderSource::Api => 8,
            OrderSource::BusIntake => 100,
        }
    }
}

/// The status an order in processing reaches once every item has a final
/// outcome: completed if at least one succeeded, failed if none did.
pub fn settle(total: u64, succeeded: u64, failed: u64) -> Option<WorkOrderStatus> {
    if succeeded + failed < total {
        return None;
    }
    Some(if succeeded > 0 {
        WorkOrderStatus::Completed
    } else {
        WorkOrderStatus::Failed
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use WorkOrderStatus::*;

    #[test]
    fn lifecycle_transitions() {
        assert!(InReview.can_become(Approved));
        assert!(InReview.can_become(Cancelled));
        assert!(InReview.can_become(Rejected));
        assert!(Approved.can_become(Processing));
        assert!(Processing.can_become(Completed));
        assert!(Processing.can_become(Failed));
        // only an order in review can be cancelled by a user; approved is
        // cancelled internally before fan-out starts.
        assert!(!Processing.can_become(Cancelled));
        for s in WorkOrderStatus::ALL {
            if s.is_terminal() {
                for n in WorkOrderStatus::ALL {
                    assert!(!s.can_become(n), "{s:?} -> {n:?}");
                }
            }
        }
    }

    #[test]
    fn settle_rules() {
        assert_eq!(settle(3, 1, 1), None);
        assert_eq!(settle(3, 1, 2), Some(Completed));
        assert_eq!(settle(3, 0, 3), Some(Failed));
        assert_eq!(OrderSource::Api.code(), 8);
        assert_eq!(OrderSource::PoolStopTask.code(), 7);
    }
}

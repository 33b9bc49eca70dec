//! Per-card cooldowns and quotas, as data.
//!
//! A cooldown is a guard on a card: taken by some operations, checked by some
//! operations, for a time (virtual, see [`crate::clock`]) or until the change
//! completes. Adapters take them with an atomic create in the `gsl_guards`
//! bucket; the key is [`CooldownRule::key`]. A quota is a count of successful
//! changes per card per period, kept as a ledger updated by compare-and-set.

use crate::calendar::month_key;
use crate::carrier::Carrier;
use crate::codes::ErrorCode;
use crate::operation::OperationKind;
use chrono::{DateTime, Duration, Utc};

/// How long a guard lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// For this long after it is taken.
    For(Duration),
    /// Until the change that took it completes (with the SLA deadline as a
    /// safety bound, so a lost completion does not block a card forever).
    UntilComplete,
}

/// Which operations a rule concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ops {
    Any,
    Only(&'static [OperationKind]),
}

impl Ops {
    pub fn contains(self, op: OperationKind) -> bool {
        match self {
            Ops::Any => true,
            Ops::Only(list) => list.contains(&op),
        }
    }
}

/// One cooldown rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CooldownRule {
    /// Key scope, e.g. `same`, `status`.
    pub name: &'static str,
    pub carriers: &'static [Carrier],
    /// Operations that take the guard (when the carrier accepts the change).
    pub taken_by: Ops,
    /// Operations refused while the guard is held.
    pub blocks: Ops,
    /// The guard is per operation (`same.<op>`), not per card.
    pub per_operation: bool,
    /// Only tri-net cards without the SDK.
    pub no_sdk_only: bool,
    pub hold: Hold,
    pub code: ErrorCode,
    /// Released when the carrier refuses or fails the change.
    pub release_on_failure: bool,
    pub note: &'static str,
}

use Carrier::*;
use OperationKind as K;

const ALL: &[Carrier] = &[Cmcc, Ct, Cu, Trinet];
const STATUS_OPS: &[OperationKind] = &[K::Activate, K::Stop, K::Resume, K::CloseCard];

/// The cooldown table.
pub static COOLDOWNS: &[CooldownRule] = &[
    CooldownRule {
        name: "same",
        carriers: ALL,
        taken_by: Ops::Any,
        blocks: Ops::Any,
        per_operation: true,
        no_sdk_only: false,
        hold: Hold::For(Duration::minutes(5)),
        code: ErrorCode::RepeatTooSoon,
        release_on_failure: true,
        note: "reference service: the same operation on the same card within 5 minutes is refused (GSL.00016016)",
    },
    CooldownRule {
        name: "pending_stop",
        carriers: ALL,
        taken_by: Ops::Only(&[K::Stop]),
        blocks: Ops::Only(&[K::Stop, K::Resume]),
        per_operation: false,
        no_sdk_only: false,
        hold: Hold::UntilComplete,
        code: ErrorCode::PendingStop,
        release_on_failure: true,
        note: "a card with a pending stop order gets no other stop or resume (GSL.00016010)",
    },
    CooldownRule {
        name: "status",
        carriers: &[Cmcc],
        taken_by: Ops::Only(STATUS_OPS),
        blocks: Ops::Only(STATUS_OPS),
        per_operation: false,
        no_sdk_only: false,
        hold: Hold::For(Duration::minutes(30)),
        code: ErrorCode::StatusChangeTooSoon,
        release_on_failure: false,
        note: "China Mobile refuses a second status change on the same card inside its repeat window (3 or 30 minutes in the sources: 30 by default, GSL_COOLDOWN_HOLDS=status=<secs>)",
    },
    CooldownRule {
        name: "toggle",
        carriers: &[Cmcc],
        taken_by: Ops::Only(&[K::SetUsageThreshold, K::CancelUsageThreshold]),
        blocks: Ops::Only(&[K::SetUsageThreshold, K::CancelUsageThreshold]),
        per_operation: false,
        no_sdk_only: false,
        hold: Hold::For(Duration::minutes(10)),
        code: ErrorCode::ToggleTooSoon,
        release_on_failure: false,
        note: "China Mobile spaces some function toggles 10 minutes apart",
    },
    CooldownRule {
        name: "switch",
        carriers: &[Trinet],
        taken_by: Ops::Only(&[K::SwitchNetwork, K::SwitchPolicy]),
        blocks: Ops::Only(&[K::SwitchNetwork, K::SwitchPolicy]),
        per_operation: false,
        no_sdk_only: true,
        hold: Hold::For(Duration::minutes(5)),
        code: ErrorCode::SwitchTooSoon,
        release_on_failure: true,
        note: "a tri-net card without the SDK switches at most once every 5 minutes",
    },
    CooldownRule {
        name: "reset",
        carriers: ALL,
        taken_by: Ops::Only(&[K::Stop]),
        blocks: Ops::Only(&[K::Resume]),
        per_operation: false,
        no_sdk_only: false,
        hold: Hold::For(Duration::minutes(15)),
        code: ErrorCode::ResumeTooSoon,
        release_on_failure: true,
        note: "a network reset is a stop followed by a resume at least 15 minutes later",
    },
];

impl CooldownRule {
    /// Whether this rule concerns an operation on a card.
    pub fn applies(&self, carrier: Carrier, no_sdk: bool, op: OperationKind) -> bool {
        self.carriers.contains(&carrier)
            && (!self.no_sdk_only || no_sdk)
            && (self.taken_by.contains(op) || self.blocks.contains(op))
    }

    /// The guard key in `gsl_guards`: `<rule>.<card>` or `<rule>.<card>.<op>`.
    pub fn key(&self, card_key: &str, op: OperationKind) -> String {
        if self.per_operation {
            format!("{}.{card_key}.{}", self.name, op.as_str())
        } else {
            format!("{}.{card_key}", self.name)
        }
    }

    /// The same rule with another hold time (deployments and tests may tune
    /// cooldowns; zero disables a timed rule).
    pub fn with_hold(mut self, hold: Hold) -> CooldownRule {
        self.hold = hold;
        self
    }
}

/// The rules that concern an operation on a card.
pub fn rules_for(
    carrier: Carrier,
    no_sdk: bool,
    op: OperationKind,
) -> impl Iterator<Item = &'static CooldownRule> {
    COOLDOWNS
        .iter()
        .filter(move |r| r.applies(carrier, no_sdk, op))
}

/// A per-card quota on successful changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaRule {
    pub name: &'static str,
    pub carrier: Carrier,
    pub op: OperationKind,
    pub limit: u32,
    pub code: ErrorCode,
    pub note: &'static str,
}

/// The quota table.
pub static QUOTAS: &[QuotaRule] = &[QuotaRule {
    name: "rebind",
    carrier: Ct,
    op: K::Rebind,
    limit: 2,
    code: ErrorCode::RebindQuotaExhausted,
    note: "China Telecom: at most 2 successful rebinds per card per calendar month (UTC+8)",
}];

impl QuotaRule {
    /// The ledger key in `gsl_quota`: `ct.rebind.<card>.<yyyymm in UTC+8>`.
    pub fn ledger_key(&self, card_key: &str, at: DateTime<Utc>) -> String {
        format!(
            "{}.{}.{card_key}.{}",
            self.carrier.as_str(),
            self.name,
            month_key(at)
        )
    }
}

pub fn quota_for(carrier: Carrier, op: OperationKind) -> Option<&'static QuotaRule> {
    QUOTAS.iter().find(|q| q.carrier == carrier && q.op == op)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(c: Carrier, no_sdk: bool, op: OperationKind) -> Vec<&'static str> {
        rules_for(c, no_sdk, op).map(|r| r.name).collect()
    }

    #[test]
    fn same_operation_within_5_minutes_everywhere() {
        for c in Carrier::ALL {
            for op in OperationKind::ALL {
                assert!(names(c, false, op).contains(&"same"), "{c} {op}");
            }
        }
        let r = COOLDOWNS.iter().find(|r| r.name == "same").unwrap();
        assert_eq!(r.hold, Hold::For(Duration::minutes(5)));
        assert_eq!(r.code.code(), "GSL.00016016");
        assert_ne!(r.key("c1", K::Stop), r.key("c1", K::Resume));
    }

    #[test]
    fn pending_stop_blocks_stop_and_resume() {
        let r = COOLDOWNS.iter().find(|r| r.name == "pending_stop").unwrap();
        assert!(r.blocks.contains(K::Stop) && r.blocks.contains(K::Resume));
        assert!(!r.blocks.contains(K::Activate));
        assert_eq!(r.hold, Hold::UntilComplete);
        assert_eq!(r.code.code(), "GSL.00016010");
        assert_eq!(r.key("c1", K::Stop), r.key("c1", K::Resume));
    }

    #[test]
    fn cmcc_repeat_window_30_minutes_by_default() {
        for op in STATUS_OPS {
            assert!(names(Cmcc, false, *op).contains(&"status"));
            assert!(!names(Ct, false, *op).contains(&"status"));
        }
        let r = COOLDOWNS.iter().find(|r| r.name == "status").unwrap();
        assert_eq!(r.hold, Hold::For(Duration::minutes(30)));
        assert!(names(Cmcc, false, K::SetUsageThreshold).contains(&"toggle"));
    }

    #[test]
    fn trinet_switch_spacing_only_without_sdk() {
        assert!(names(Trinet, true, K::SwitchNetwork).contains(&"switch"));
        assert!(names(Trinet, true, K::SwitchPolicy).contains(&"switch"));
        assert!(!names(Trinet, false, K::SwitchNetwork).contains(&"switch"));
    }

    #[test]
    fn reset_needs_15_minutes() {
        let r = COOLDOWNS.iter().find(|r| r.name == "reset").unwrap();
        assert!(r.taken_by.contains(K::Stop) && r.blocks.contains(K::Resume));
        assert_eq!(r.hold, Hold::For(Duration::minutes(15)));
    }

    #[test]
    fn ct_rebind_quota_per_cst_month() {
        let q = quota_for(Ct, K::Rebind).unwrap();
        assert_eq!(q.limit, 2);
        assert!(quota_for(Cmcc, K::Rebind).is_none());
        let t = DateTime::parse_from_rfc3339("2026-11-30T17:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(q.ledger_key("8986031", t), "ct.rebind.8986031.202612");
    }
}

//! Card status (`sim_status`), stop reason (`operator_status`) and the facts
//! about a card that the rules look at.

use crate::carrier::Carrier;
use serde::{Deserialize, Serialize};
use std::fmt;

/// `sim_status`, with the reference service's numeric codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SimStatus {
    /// 10 可测试
    Testable,
    /// 11 未激活
    NotActivated,
    /// 13 可激活 (the 6-month silent period)
    Activatable,
    /// 20 在用
    InUse,
    /// 14 已停用
    Stopped,
    /// 30 已拆机 (irreversible)
    Closed,
}

impl SimStatus {
    pub const ALL: [SimStatus; 6] = [
        SimStatus::Testable,
        SimStatus::NotActivated,
        SimStatus::Activatable,
        SimStatus::InUse,
        SimStatus::Stopped,
        SimStatus::Closed,
    ];

    pub const fn code(self) -> u8 {
        match self {
            SimStatus::Testable => 10,
            SimStatus::NotActivated => 11,
            SimStatus::Activatable => 13,
            SimStatus::InUse => 20,
            SimStatus::Stopped => 14,
            SimStatus::Closed => 30,
        }
    }

    pub fn from_code(code: i64) -> Option<SimStatus> {
        SimStatus::ALL
            .into_iter()
            .find(|s| i64::from(s.code()) == code)
    }

    pub const fn chinese(self) -> &'static str {
        match self {
            SimStatus::Testable => "可测试",
            SimStatus::NotActivated => "未激活",
            SimStatus::Activatable => "可激活",
            SimStatus::InUse => "在用",
            SimStatus::Stopped => "已停用",
            SimStatus::Closed => "已拆机",
        }
    }
}

impl fmt::Display for SimStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code(), self.chinese())
    }
}

/// `operator_status`: why a card is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// -1 normal (not stopped)
    Normal,
    /// 1 over plan quota
    OverPlanQuota,
    /// 2 over the customer's usage threshold (达量断网)
    OverThreshold,
    /// 3 pool exhausted
    PoolExhausted,
    /// 4 plan expired
    PlanExpired,
    /// 5 stopped on request (主动停机)
    OnRequest,
    /// 6 violation (违规)
    Violation,
    /// 7 device-card separation (机卡分离)
    DeviceSeparation,
}

impl StopReason {
    pub const ALL: [StopReason; 8] = [
        StopReason::Normal,
        StopReason::OverPlanQuota,
        StopReason::OverThreshold,
        StopReason::PoolExhausted,
        StopReason::PlanExpired,
        StopReason::OnRequest,
        StopReason::Violation,
        StopReason::DeviceSeparation,
    ];

    pub const fn code(self) -> i8 {
        match self {
            StopReason::Normal => -1,
            StopReason::OverPlanQuota => 1,
            StopReason::OverThreshold => 2,
            StopReason::PoolExhausted => 3,
            StopReason::PlanExpired => 4,
            StopReason::OnRequest => 5,
            StopReason::Violation => 6,
            StopReason::DeviceSeparation => 7,
        }
    }

    pub fn from_code(code: i64) -> Option<StopReason> {
        StopReason::ALL
            .into_iter()
            .find(|s| i64::from(s.code()) == code)
    }
}

/// Tri-net card version: with the switching SDK on the device, or without.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TriNetVersion {
    Sdk,
    #[default]
    NoSdk,
}

/// What the rules need to know about a card (from the card registry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardFacts {
    pub carrier: Carrier,
    pub status: SimStatus,
    pub stop_reason: StopReason,
    /// In a forward (prepaid) pool.
    pub pooled: bool,
    /// Personal real-name verification done.
    pub real_named: bool,
    /// Tri-net cards only.
    pub trinet_version: Option<TriNetVersion>,
}

impl CardFacts {
    /// A card in use, not pooled, not real-named: a convenient base for tests.
    pub fn in_use(carrier: Carrier) -> CardFacts {
        CardFacts {
            carrier,
            status: SimStatus::InUse,
            stop_reason: StopReason::Normal,
            pooled: false,
            real_named: false,
            trinet_version: (carrier == Carrier::Trinet).then_some(TriNetVersion::NoSdk),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_match_domain() {
        let expect = [
            (SimStatus::Testable, 10),
            (SimStatus::NotActivated, 11),
            (SimStatus::Activatable, 13),
            (SimStatus::InUse, 20),
            (SimStatus::Stopped, 14),
            (SimStatus::Closed, 30),
        ];
        for (s, c) in expect {
            assert_eq!(s.code(), c);
            assert_eq!(SimStatus::from_code(i64::from(c)), Some(s));
        }
        assert_eq!(SimStatus::from_code(12), None);
    }

    #[test]
    fn stop_reason_codes_match_domain() {
        let expect = [
            (StopReason::Normal, -1),
            (StopReason::OverPlanQuota, 1),
            (StopReason::OverThreshold, 2),
            (StopReason::PoolExhausted, 3),
            (StopReason::PlanExpired, 4),
            (StopReason::OnRequest, 5),
            (StopReason::Violation, 6),
            (StopReason::DeviceSeparation, 7),
        ];
        for (s, c) in expect {
            assert_eq!(s.code(), c);
            assert_eq!(StopReason::from_code(i64::from(c)), Some(s));
        }
        assert_eq!(StopReason::from_code(0), None);
    }
}

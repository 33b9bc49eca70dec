//! The operations a work order can carry (one row each in domain.md's table).

use crate::carrier::Carrier;
use crate::ids::Imei;
use crate::region::Region;
use crate::threshold::Threshold;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// The kind of an operation, without parameters. Its `as_str` is the last
/// subject token of `gsl.work.<carrier>.<op>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    Activate,
    Stop,
    Resume,
    Rebind,
    SpeedLimit,
    NetworkCutoff,
    NetworkRestore,
    SetUsageThreshold,
    CancelUsageThreshold,
    RegionBind,
    DirectionalAdd,
    DirectionalModify,
    DirectionalDelete,
    SwitchNetwork,
    SwitchPolicy,
    CloseCard,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown operation {0:?}")]
pub struct UnknownOperation(pub String);

impl OperationKind {
    pub const ALL: [OperationKind; 16] = [
        OperationKind::Activate,
        OperationKind::Stop,
        OperationKind::Resume,
        OperationKind::Rebind,
        OperationKind::SpeedLimit,
        OperationKind::NetworkCutoff,
        OperationKind::NetworkRestore,
        OperationKind::SetUsageThreshold,
        OperationKind::CancelUsageThreshold,
        OperationKind::RegionBind,
        OperationKind::DirectionalAdd,
        OperationKind::DirectionalModify,
        OperationKind::DirectionalDelete,
        OperationKind::SwitchNetwork,
        OperationKind::SwitchPolicy,
        OperationKind::CloseCard,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            OperationKind::Activate => "activate",
            OperationKind::Stop => "stop",
            OperationKind::Resume => "resume",
            OperationKind::Rebind => "rebind",
            OperationKind::SpeedLimit => "speed_limit",
            OperationKind::NetworkCutoff => "network_cutoff",
            OperationKind::NetworkRestore => "network_restore",
            OperationKind::SetUsageThreshold => "set_usage_threshold",
            OperationKind::CancelUsageThreshold => "cancel_usage_threshold",
            OperationKind::RegionBind => "region_bind",
            OperationKind::DirectionalAdd => "directional_add",
            OperationKind::DirectionalModify => "directional_modify",
            OperationKind::DirectionalDelete => "directional_delete",
            OperationKind::SwitchNetwork => "switch_network",
            OperationKind::SwitchPolicy => "switch_policy",
            OperationKind::CloseCard => "close_card",
        }
    }

    /// The Chinese name operators use.
    pub const fn chinese(self) -> &'static str {
        match self {
            OperationKind::Activate => "激活",
            OperationKind::Stop => "停机",
            OperationKind::Resume => "复机",
            OperationKind::Rebind => "机卡重绑",
            OperationKind::SpeedLimit => "限速",
            OperationKind::NetworkCutoff => "申请断网",
            OperationKind::NetworkRestore => "断网恢复",
            OperationKind::SetUsageThreshold => "达量断网",
            OperationKind::CancelUsageThreshold => "取消达量断网",
            OperationKind::RegionBind => "绑定限制区域",
            OperationKind::DirectionalAdd => "新增定向",
            OperationKind::DirectionalModify => "修改定向",
            OperationKind::DirectionalDelete => "删除定向",
            OperationKind::SwitchNetwork => "切换网络",
            OperationKind::SwitchPolicy => "切换策略",
            OperationKind::CloseCard => "拆机",
        }
    }

    /// Directional config acts on a purchase batch, not on cards.
    pub const fn is_directional(self) -> bool {
        matches!(
            self,
            OperationKind::DirectionalAdd
                | OperationKind::DirectionalModify
                | OperationKind::DirectionalDelete
        )
    }

    /// Operations that change `sim_status` (China Mobile spaces these 3 minutes apart).
    pub const fn is_status_change(self) -> bool {
        matches!(
            self,
            OperationKind::Activate
                | OperationKind::Stop
                | OperationKind::Resume
                | OperationKind::CloseCard
        )
    }

    /// The audit event name (domain.md, "Audit").
    pub const fn audit_event(self, batch: bool) -> &'static str {
        match (self, batch) {
            (OperationKind::Stop, true) => "batchStopSimCards",
            (OperationKind::Stop, false) => "stopSimCard",
            (OperationKind::Rebind, true) => "batchBindDevices",
            (OperationKind::Rebind, false) => "bindDevice",
            (OperationKind::Activate, _) => "enableSimCard",
            (OperationKind::Resume, _) => "resetSimCard",
            (OperationKind::SpeedLimit, _) => "setSpeedLimit",
            (OperationKind::NetworkCutoff | OperationKind::NetworkRestore, _) => {
                "startStopSimCardNet"
            }
            (OperationKind::SetUsageThreshold, _) => "setSimCardThreshold",
            (OperationKind::CancelUsageThreshold, _) => "resumeSimCard",
            (OperationKind::RegionBind, _) => "bindSimCardRegion",
            (OperationKind::DirectionalAdd, _) => "createOrderDirectional",
            (OperationKind::DirectionalModify, _) => "updateOrderDirectional",
            (OperationKind::DirectionalDelete, _) => "deleteOrderDirectional",
            (OperationKind::SwitchNetwork, _) => "switchNetwork",
            (OperationKind::SwitchPolicy, _) => "setNetworkSwitchPolicy",
            (OperationKind::CloseCard, _) => "closeSimCard",
        }
    }
}

impl fmt::Display for OperationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OperationKind {
    type Err = UnknownOperation;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase().replace('-', "_");
        OperationKind::ALL
            .into_iter()
            .find(|k| k.as_str() == t)
            .ok_or_else(|| UnknownOperation(s.to_owned()))
    }
}

/// Rebind type (China Mobile: normal only; China Telecom: normal or fixed IMEI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BindType {
    #[default]
    Normal,
    FixedImei,
}

/// An operation with its parameters, as it travels to an adapter for one card
/// (per-card parameters such as the IMEI are already resolved).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Operation {
    Activate,
    Stop,
    Resume,
    Rebind {
        bind_type: BindType,
        /// Required for `FixedImei`; optional for a normal rebind.
        imei: Option<Imei>,
    },
    SpeedLimit {
        /// Kbps; 0 removes the limit.
        kbps: u32,
    },
    NetworkCutoff,
    NetworkRestore,
    SetUsageThreshold {
        threshold: Threshold,
    },
    CancelUsageThreshold,
    RegionBind {
        region: Region,
    },
    DirectionalAdd {
        entries: Vec<String>,
    },
    DirectionalModify {
        entry_id: String,
        entry: String,
    },
    DirectionalDelete {
        entry_ids: Vec<String>,
    },
    SwitchNetwork {
        target: Carrier,
    },
    SwitchPolicy {
        policy_id: String,
    },
    CloseCard,
}

impl Operation {
    pub fn kind(&self) -> OperationKind {
        match self {
            Operation::Activate => OperationKind::Activate,
            Operation::Stop => OperationKind::Stop,
            Operation::Resume => OperationKind::Resume,
            Operation::Rebind { .. } => OperationKind::Rebind,
            Operation::SpeedLimit { .. } => OperationKind::SpeedLimit,
            Operation::NetworkCutoff => OperationKind::NetworkCutoff,
            Operation::NetworkRestore => OperationKind::NetworkRestore,
            Operation::SetUsageThreshold { .. } => OperationKind::SetUsageThreshold,
            Operation::CancelUsageThreshold => OperationKind::CancelUsageThreshold,
            Operation::RegionBind { .. } => OperationKind::RegionBind,
            Operation::DirectionalAdd { .. } => OperationKind::DirectionalAdd,
            Operation::DirectionalModify { .. } => OperationKind::DirectionalModify,
            Operation::DirectionalDelete { .. } => OperationKind::DirectionalDelete,
            Operation::SwitchNetwork { .. } => OperationKind::SwitchNetwork,
            Operation::SwitchPolicy { .. } => OperationKind::SwitchPolicy,
            Operation::CloseCard => OperationKind::CloseCard,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_subject_tokens_and_round_trip() {
        let mut seen = HashSet::new();
        for k in OperationKind::ALL {
            let s = k.as_str();
            assert!(seen.insert(s));
            assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert_eq!(s.parse::<OperationKind>().unwrap(), k);
            assert!(!k.chinese().is_empty());
            assert!(!k.audit_event(false).is_empty());
        }
        assert_eq!(
            "SPEED-LIMIT".parse::<OperationKind>().unwrap(),
            OperationKind::SpeedLimit
        );
        assert!("teleport".parse::<OperationKind>().is_err());
    }

    #[test]
    fn audit_names_from_domain() {
        assert_eq!(OperationKind::Stop.audit_event(false), "stopSimCard");
        assert_eq!(OperationKind::Stop.audit_event(true), "batchStopSimCards");
        assert_eq!(OperationKind::Rebind.audit_event(true), "batchBindDevices");
        assert_eq!(
            OperationKind::SwitchPolicy.audit_event(false),
            "setNetworkSwitchPolicy"
        );
        assert_eq!(
            OperationKind::DirectionalAdd.audit_event(false),
            "createOrderDirectional"
        );
    }

    #[test]
    fn operation_json_shape() {
        let op = Operation::SpeedLimit { kbps: 512 };
        let j = serde_json::to_string(&op).unwrap();
        assert_eq!(j, r#"{"op":"speed_limit","kbps":512}"#);
        let back: Operation = serde_json::from_str(&j).unwrap();
        assert_eq!(back.kind(), OperationKind::SpeedLimit);
    }
}

//! Conversions between the wire enums and the domain types.
//!
//! Wire enums arrive as `i32` and may hold values this build does not know;
//! every conversion from the wire is fallible and says which field was wrong.

use crate::v1;
use chrono::{DateTime, Utc};
use gsl_domain::carrier::Carrier;
use gsl_domain::operation::{BindType, OperationKind};
use gsl_domain::workorder::{ItemStatus, WorkOrderStatus};
use thiserror::Error;

/// A wire value that does not map to a domain value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {reason}")]
pub struct WireError {
    pub field: &'static str,
    pub reason: String,
}

impl WireError {
    pub fn new(field: &'static str, reason: impl Into<String>) -> WireError {
        WireError {
            field,
            reason: reason.into(),
        }
    }
}

pub fn carrier_to_wire(c: Carrier) -> v1::Carrier {
    match c {
        Carrier::Cmcc => v1::Carrier::Cmcc,
        Carrier::Ct => v1::Carrier::Ct,
        Carrier::Cu => v1::Carrier::Cu,
        Carrier::Trinet => v1::Carrier::Trinet,
    }
}

pub fn carrier_from_wire(v: i32) -> Result<Carrier, WireError> {
    match v1::Carrier::try_from(v) {
        Ok(v1::Carrier::Cmcc) => Ok(Carrier::Cmcc),
        Ok(v1::Carrier::Ct) => Ok(Carrier::Ct),
        Ok(v1::Carrier::Cu) => Ok(Carrier::Cu),
        Ok(v1::Carrier::Trinet) => Ok(Carrier::Trinet),
        Ok(v1::Carrier::Unspecified) => Err(WireError::new("carrier", "unspecified")),
        Err(_) => Err(WireError::new("carrier", format!("unknown value {v}"))),
    }
}

pub fn kind_to_wire(k: OperationKind) -> v1::OperationKind {
    use v1::OperationKind as W;
    match k {
        OperationKind::Activate => W::Activate,
        OperationKind::Stop => W::Stop,
        OperationKind::Resume => W::Resume,
        OperationKind::Rebind => W::Rebind,
        OperationKind::SpeedLimit => W::SpeedLimit,
        OperationKind::NetworkCutoff => W::NetworkCutoff,
        OperationKind::NetworkRestore => W::NetworkRestore,
        OperationKind::SetUsageThreshold => W::SetUsageThreshold,
        OperationKind::CancelUsageThreshold => W::CancelUsageThreshold,
        OperationKind::RegionBind => W::RegionBind,
        OperationKind::DirectionalAdd => W::DirectionalAdd,
        OperationKind::DirectionalModify => W::DirectionalModify,
        OperationKind::DirectionalDelete => W::DirectionalDelete,
        OperationKind::SwitchNetwork => W::SwitchNetwork,
        OperationKind::SwitchPolicy => W::SwitchPolicy,
        OperationKind::CloseCard => W::CloseCard,
    }
}

pub fn kind_from_wire(v: i32) -> Result<OperationKind, WireError> {
    OperationKind::ALL
        .into_iter()
        .find(|k| kind_to_wire(*k) as i32 == v)
        .ok_or_else(|| WireError::new("operation", format!("unknown or unspecified value {v}")))
}

/// The kind of a wire operation (`None` when the oneof is empty).
pub fn operation_kind(op: &v1::Operation) -> Option<OperationKind> {
    use v1::operation::Kind as O;
    Some(match op.kind.as_ref()? {
        O::Activate(_) => OperationKind::Activate,
        O::Stop(_) => OperationKind::Stop,
        O::Resume(_) => OperationKind::Resume,
        O::Rebind(_) => OperationKind::Rebind,
        O::SpeedLimit(_) => OperationKind::SpeedLimit,
        O::NetworkCutoff(_) => OperationKind::NetworkCutoff,
        O::NetworkRestore(_) => OperationKind::NetworkRestore,
        O::SetUsageThreshold(_) => OperationKind::SetUsageThreshold,
        O::CancelUsageThreshold(_) => OperationKind::CancelUsageThreshold,
        O::RegionBind(_) => OperationKind::RegionBind,
        O::DirectionalAdd(_) => OperationKind::DirectionalAdd,
        O::DirectionalModify(_) => OperationKind::DirectionalModify,
        O::DirectionalDelete(_) => OperationKind::DirectionalDelete,
        O::SwitchNetwork(_) => OperationKind::SwitchNetwork,
        O::SwitchPolicy(_) => OperationKind::SwitchPolicy,
        O::CloseCard(_) => OperationKind::CloseCard,
    })
}

pub fn bind_type_from_wire(v: i32) -> Result<BindType, WireError> {
    match v1::BindType::try_from(v) {
        Ok(v1::BindType::Normal) => Ok(BindType::Normal),
        Ok(v1::BindType::FixedImei) => Ok(BindType::FixedImei),
        Err(_) => Err(WireError::new("bind_type", format!("unknown value {v}"))),
    }
}

pub fn bind_type_to_wire(b: BindType) -> v1::BindType {
    match b {
        BindType::Normal => v1::BindType::Normal,
        BindType::FixedImei => v1::BindType::FixedImei,
    }
}

pub fn status_to_wire(s: WorkOrderStatus) -> v1::WorkOrderStatus {
    use v1::WorkOrderStatus as W;
    match s {
        WorkOrderStatus::InReview => W::InReview,
        WorkOrderStatus::Approved => W::Approved,
        WorkOrderStatus::Processing => W::Processing,
        WorkOrderStatus::Completed => W::Completed,
        WorkOrderStatus::Failed => W::Failed,
        WorkOrderStatus::Cancelled => W::Cancelled,
        WorkOrderStatus::Rejected => W::Rejected,
    }
}

pub fn status_from_wire(v: i32) -> Result<WorkOrderStatus, WireError> {
    WorkOrderStatus::ALL
        .into_iter()
        .find(|s| status_to_wire(*s) as i32 == v)
        .ok_or_else(|| WireError::new("status", format!("unknown or unspecified value {v}")))
}

/// Whether a wire status is terminal, by the domain's rule (an unknown value
/// is not).
pub fn status_is_terminal(v: i32) -> bool {
    status_from_wire(v).is_ok_and(WorkOrderStatus::is_terminal)
}

pub fn item_status_to_wire(s: ItemStatus) -> v1::ItemStatus {
    match s {
        ItemStatus::Processing => v1::ItemStatus::Processing,
        ItemStatus::Succeeded => v1::ItemStatus::Succeeded,
        ItemStatus::Failed => v1::ItemStatus::Failed,
    }
}

pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

pub fn from_timestamp(t: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?)
}

/// The facts the rules look at, from a registry record (`None` when the
/// record lacks a valid carrier or status).
pub fn card_facts(c: &v1::Card) -> Option<gsl_domain::CardFacts> {
    facts(
        c.carrier,
        c.sim_status,
        c.stop_reason,
        c.pooled,
        c.real_named,
        c.trinet_version,
    )
}

/// What an adapter needs of a card (see `v1::CardSnapshot`).
pub fn snapshot_of(c: &v1::Card) -> v1::CardSnapshot {
    v1::CardSnapshot {
        carrier: c.carrier,
        sim_status: c.sim_status,
        stop_reason: c.stop_reason,
        pooled: c.pooled,
        real_named: c.real_named,
        trinet_version: c.trinet_version,
        active_profile: c.active_profile,
        msisdn: c.msisdn.clone(),
        access_number: c.access_number.clone(),
    }
}

/// The capability-table facts of a card snapshot (`None`: carrier or status
/// unknown).
pub fn snapshot_facts(c: &v1::CardSnapshot) -> Option<gsl_domain::CardFacts> {
    facts(
        c.carrier,
        c.sim_status,
        c.stop_reason,
        c.pooled,
        c.real_named,
        c.trinet_version,
    )
}

fn facts(
    carrier: i32,
    sim_status: u32,
    stop_reason: i32,
    pooled: bool,
    real_named: bool,
    trinet_version: i32,
) -> Option<gsl_domain::CardFacts> {
    use gsl_domain::card::{SimStatus, StopReason, TriNetVersion};
    Some(gsl_domain::CardFacts {
        carrier: carrier_from_wire(carrier).ok()?,
        status: SimStatus::from_code(i64::from(sim_status))?,
        stop_reason: StopReason::from_code(i64::from(stop_reason)).unwrap_or(StopReason::Normal),
        pooled,
        real_named,
        trinet_version: match v1::TriNetVersion::try_from(trinet_version) {
            Ok(v1::TriNetVersion::Sdk) => Some(TriNetVersion::Sdk),
            Ok(v1::TriNetVersion::NoSdk) => Some(TriNetVersion::NoSdk),
            _ => None,
        },
    })
}

/// A wire operation (per-card parameters already resolved) as a domain
/// operation, with every parameter validated.
pub fn operation_to_domain(op: &v1::Operation) -> Result<gsl_domain::Operation, WireError> {
    use gsl_domain::Operation as D;
    use v1::operation::Kind as O;
    let bad = |f: &'static str, e: String| WireError::new(f, e);
    Ok(
        match op
            .kind
            .as_ref()
            .ok_or_else(|| WireError::new("operation", "empty"))?
        {
            O::Activate(_) => D::Activate,
            O::Stop(_) => D::Stop,
            O::Resume(_) => D::Resume,
            O::Rebind(r) => D::Rebind {
                bind_type: bind_type_from_wire(r.bind_type)?,
                imei: if r.imei.is_empty() {
                    None
                } else {
                    Some(gsl_domain::Imei::parse(&r.imei).map_err(|e| bad("imei", e.to_string()))?)
                },
            },
            O::SpeedLimit(s) => D::SpeedLimit { kbps: s.kbps },
            O::NetworkCutoff(_) => D::NetworkCutoff,
            O::NetworkRestore(_) => D::NetworkRestore,
            O::SetUsageThreshold(t) => D::SetUsageThreshold {
                threshold: gsl_domain::threshold::Threshold::from_mb(t.threshold_mb)
                    .map_err(|e| bad("threshold_mb", e.to_string()))?,
            },
            O::CancelUsageThreshold(_) => D::CancelUsageThreshold,
            O::RegionBind(r) => D::RegionBind {
                region: gsl_domain::region::Region::parse(&r.region)
                    .map_err(|e| bad("region", e.to_string()))?,
            },
            O::DirectionalAdd(a) => D::DirectionalAdd {
                entries: a.entries.clone(),
            },
            O::DirectionalModify(m) => D::DirectionalModify {
                entry_id: m.entry_id.clone(),
                entry: m.entry.clone(),
            },
            O::DirectionalDelete(d) => D::DirectionalDelete {
                entry_ids: d.entry_ids.clone(),
            },
            O::SwitchNetwork(s) => D::SwitchNetwork {
                target: carrier_from_wire(s.target)?,
            },
            O::SwitchPolicy(p) => D::SwitchPolicy {
                policy_id: p.policy_id.clone(),
            },
            O::CloseCard(_) => D::CloseCard,
        },
    )
}

/// A wire problem from a domain code.
pub fn problem(code: gsl_domain::ErrorCode, message: impl Into<String>) -> v1::Problem {
    v1::Problem {
        code: code.code().to_owned(),
        message: message.into(),
        carrier_code: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip() {
        for c in Carrier::ALL {
            assert_eq!(carrier_from_wire(carrier_to_wire(c) as i32).unwrap(), c);
        }
        assert!(carrier_from_wire(0).is_err());
        assert!(carrier_from_wire(99).is_err());
        for k in OperationKind::ALL {
            assert_eq!(kind_from_wire(kind_to_wire(k) as i32).unwrap(), k);
            // proto names match domain names
            assert_eq!(
                kind_to_wire(k).as_str_name(),
                format!("OPERATION_KIND_{}", k.as_str().to_ascii_uppercase())
            );
        }
        assert!(kind_from_wire(0).is_err());
        for s in WorkOrderStatus::ALL {
            assert_eq!(status_from_wire(status_to_wire(s) as i32).unwrap(), s);
            assert_eq!(
                status_is_terminal(status_to_wire(s) as i32),
                s.is_terminal()
            );
        }
        assert!(!status_is_terminal(0));
        assert!(!status_is_terminal(99));
    }

    #[test]
    fn timestamps_round_trip() {
        let t = DateTime::from_timestamp(1_764_518_400, 123_456_000).unwrap();
        assert_eq!(from_timestamp(&timestamp(t)), Some(t));
        assert_eq!(
            from_timestamp(&prost_types::Timestamp {
                seconds: 0,
                nanos: -1
            }),
            None
        );
    }
}

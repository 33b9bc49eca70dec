//! The one catalogue of operations at the edges: every way an operation
//! comes in (NATS intake JSON, `gslctl` flags, the contract fixtures) names
//! it by [`OperationKind`] and its parameters by [`OpParams`], and
//! [`build`] makes the wire operation; the per-card values of a request
//! (IMEI, bind type, region) are applied by [`with_card`]. Which parameter
//! an operation needs is data ([`REQUIRED`]), in one place.

use crate::convert;
use crate::v1;
use gsl_domain::{Carrier, OperationKind};
use serde::Deserialize;

/// Every parameter any operation takes, by its name at the edges (intake
/// JSON keys; `gslctl` flags are the same names with `-`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpParams {
    /// Rebind: `normal` (default) or `fixed_imei`.
    pub bind_type: Option<String>,
    /// Rebind: the IMEI for every card without its own.
    pub imei: Option<String>,
    /// Speed limit in Kbps (0 removes the limit).
    pub kbps: Option<u32>,
    /// Usage threshold in MB (-1 unlimited, 0 at the first byte).
    pub threshold_mb: Option<i64>,
    /// Region bind: a province code such as `240_辽宁省`.
    pub region: Option<String>,
    /// Directional add: the entries.
    pub entries: Option<Vec<String>>,
    /// Directional modify: the entry and its new value.
    pub entry_id: Option<String>,
    pub entry: Option<String>,
    /// Directional delete: the entries.
    pub entry_ids: Option<Vec<String>>,
    /// Tri-net switch network: `cmcc`, `ct` or `cu`.
    pub target: Option<String>,
    /// Tri-net switch policy: the policy.
    pub policy_id: Option<String>,
}

/// The parameters each operation cannot do without.
pub const REQUIRED: &[(OperationKind, &[&str])] = &[
    (OperationKind::SpeedLimit, &["kbps"]),
    (OperationKind::SetUsageThreshold, &["threshold_mb"]),
    (OperationKind::DirectionalModify, &["entry_id", "entry"]),
    (OperationKind::SwitchNetwork, &["target"]),
    (OperationKind::SwitchPolicy, &["policy_id"]),
];

/// A parameter missing or wrong; each edge words it its own way (`gslctl`
/// names the flag, the intake the JSON key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}.{param}: {reason}")]
pub struct ParamError {
    pub kind: OperationKind,
    pub param: &'static str,
    pub reason: String,
}

impl OpParams {
    fn has(&self, param: &str) -> bool {
        match param {
            "kbps" => self.kbps.is_some(),
            "threshold_mb" => self.threshold_mb.is_some(),
            "entry_id" => self.entry_id.is_some(),
            "entry" => self.entry.is_some(),
            "target" => self.target.is_some(),
            "policy_id" => self.policy_id.is_some(),
            _ => true,
        }
    }
}

/// A bind type by its name at the edges.
pub fn bind_type(s: &str) -> Option<v1::BindType> {
    match s {
        "normal" => Some(v1::BindType::Normal),
        "fixed_imei" => Some(v1::BindType::FixedImei),
        _ => None,
    }
}

/// The wire operation of `kind` with `p`.
pub fn build(kind: OperationKind, p: &OpParams) -> Result<v1::Operation, ParamError> {
    use v1::operation::Kind as O;
    let err = |param: &'static str, reason: String| ParamError {
        kind,
        param,
        reason,
    };
    if let Some((_, need)) = REQUIRED.iter().find(|(k, _)| *k == kind)
        && let Some(missing) = need.iter().find(|n| !p.has(n))
    {
        return Err(err(missing, "is required".into()));
    }
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let k = match kind {
        OperationKind::Activate => O::Activate(v1::Activate {}),
        OperationKind::Stop => O::Stop(v1::Stop {}),
        OperationKind::Resume => O::Resume(v1::Resume {}),
        OperationKind::Rebind => {
            let b = p.bind_type.as_deref().unwrap_or("normal");
            O::Rebind(v1::Rebind {
                bind_type: bind_type(b).ok_or_else(|| {
                    err("bind_type", format!("{b:?}: expected normal or fixed_imei"))
                })? as i32,
                imei: text(&p.imei),
            })
        }
        OperationKind::SpeedLimit => O::SpeedLimit(v1::SpeedLimit {
            kbps: p.kbps.unwrap_or_default(),
        }),
        OperationKind::NetworkCutoff => O::NetworkCutoff(v1::NetworkCutoff {}),
        OperationKind::NetworkRestore => O::NetworkRestore(v1::NetworkRestore {}),
        OperationKind::SetUsageThreshold => O::SetUsageThreshold(v1::SetUsageThreshold {
            threshold_mb: p.threshold_mb.unwrap_or_default(),
        }),
        OperationKind::CancelUsageThreshold => O::CancelUsageThreshold(v1::CancelUsageThreshold {}),
        OperationKind::RegionBind => O::RegionBind(v1::RegionBind {
            region: text(&p.region),
        }),
        OperationKind::DirectionalAdd => O::DirectionalAdd(v1::DirectionalAdd {
            entries: p.entries.clone().unwrap_or_default(),
        }),
        OperationKind::DirectionalModify => O::DirectionalModify(v1::DirectionalModify {
            entry_id: text(&p.entry_id),
            entry: text(&p.entry),
        }),
        OperationKind::DirectionalDelete => O::DirectionalDelete(v1::DirectionalDelete {
            entry_ids: p.entry_ids.clone().unwrap_or_default(),
        }),
        OperationKind::SwitchNetwork => {
            let t: Carrier = text(&p.target)
                .parse()
                .map_err(|e: gsl_domain::carrier::UnknownCarrier| err("target", e.to_string()))?;
            O::SwitchNetwork(v1::SwitchNetwork {
                target: convert::carrier_to_wire(t) as i32,
            })
        }
        OperationKind::SwitchPolicy => O::SwitchPolicy(v1::SwitchPolicy {
            policy_id: text(&p.policy_id),
        }),
        OperationKind::CloseCard => O::CloseCard(v1::CloseCard {}),
    };
    Ok(v1::Operation { kind: Some(k) })
}

/// The operation for one card when the card brings its own values (a
/// rebind's IMEI or bind type, a region bind's region); `None` when the
/// order's operation applies as it is.
pub fn with_card(op: &v1::Operation, card: &v1::CardRef) -> Option<v1::Operation> {
    use v1::operation::Kind as O;
    let k = match op.kind.as_ref()? {
        O::Rebind(r) if !card.imei.is_empty() || card.bind_type.is_some() => {
            O::Rebind(v1::Rebind {
                bind_type: card.bind_type.unwrap_or(r.bind_type),
                imei: if card.imei.is_empty() {
                    r.imei.clone()
                } else {
                    card.imei.clone()
                },
            })
        }
        O::RegionBind(_) if !card.region.is_empty() => O::RegionBind(v1::RegionBind {
            region: card.region.clone(),
        }),
        _ => return None,
    };
    Some(v1::Operation { kind: Some(k) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_builds_or_names_its_missing_parameter() {
        for k in OperationKind::ALL {
            match build(k, &OpParams::default()) {
                Ok(op) => assert_eq!(convert::operation_kind(&op), Some(k)),
                Err(e) => {
                    let need = REQUIRED.iter().find(|(r, _)| *r == k).expect("listed");
                    assert!(need.1.contains(&e.param), "{k}: {e}");
                }
            }
        }
        let p = OpParams {
            kbps: Some(512),
            ..Default::default()
        };
        assert!(build(OperationKind::SpeedLimit, &p).is_ok());
        let p = OpParams {
            bind_type: Some("sideways".into()),
            ..Default::default()
        };
        assert_eq!(
            build(OperationKind::Rebind, &p).unwrap_err().param,
            "bind_type"
        );
        let p = OpParams {
            target: Some("mars".into()),
            ..Default::default()
        };
        assert_eq!(
            build(OperationKind::SwitchNetwork, &p).unwrap_err().param,
            "target"
        );
    }

    #[test]
    fn a_cards_own_values_make_its_own_operation() {
        let op = build(
            OperationKind::Rebind,
            &OpParams {
                imei: Some("490154203237518".into()),
                ..Default::default()
            },
        )
        .unwrap();
        let plain = v1::CardRef {
            id: "x".into(),
            ..Default::default()
        };
        assert_eq!(with_card(&op, &plain), None);
        let own = v1::CardRef {
            id: "x".into(),
            imei: "356938035643809".into(),
            ..Default::default()
        };
        match with_card(&op, &own).and_then(|o| o.kind) {
            Some(v1::operation::Kind::Rebind(r)) => assert_eq!(r.imei, "356938035643809"),
            other => panic!("{other:?}"),
        }
    }
}

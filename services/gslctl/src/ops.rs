//! Operations from command-line flags.

use gsl_domain::{Carrier, OperationKind};
use gsl_proto::{convert, v1};

/// Parameters an operation may take.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Params {
    /// Rebind: normal or fixed_imei (per-card values in column B win).
    #[arg(long)]
    pub bind_type: Option<String>,
    /// Rebind: the IMEI for every card (per-card values in column C win).
    #[arg(long)]
    pub imei: Option<String>,
    /// Speed limit in Kbps (0 removes the limit).
    #[arg(long)]
    pub kbps: Option<u32>,
    /// Usage threshold in MB (-1 unlimited, 0 immediate).
    #[arg(long, allow_hyphen_values = true)]
    pub threshold_mb: Option<i64>,
    /// Region bind: e.g. 240_辽宁省 (per-card values in column B win).
    #[arg(long)]
    pub region: Option<String>,
    /// Directional add: entries, comma separated.
    #[arg(long, value_delimiter = ',')]
    pub entries: Vec<String>,
    /// Directional modify: the entry id and its new value.
    #[arg(long)]
    pub entry_id: Option<String>,
    #[arg(long)]
    pub entry: Option<String>,
    /// Directional delete: entry ids, comma separated.
    #[arg(long, value_delimiter = ',')]
    pub entry_ids: Vec<String>,
    /// Tri-net switch network: cmcc, ct or cu.
    #[arg(long)]
    pub target: Option<String>,
    /// Tri-net switch policy: the policy id.
    #[arg(long)]
    pub policy: Option<String>,
}

/// Build the wire operation; `Err` says which flag is missing or wrong.
pub fn operation(kind: OperationKind, p: &Params) -> Result<v1::Operation, String> {
    use v1::operation::Kind as O;
    let need =
        |v: &Option<String>, flag: &str| v.clone().ok_or_else(|| format!("{kind} needs --{flag}"));
    let k = match kind {
        OperationKind::Activate => O::Activate(v1::Activate {}),
        OperationKind::Stop => O::Stop(v1::Stop {}),
        OperationKind::Resume => O::Resume(v1::Resume {}),
        OperationKind::Rebind => O::Rebind(v1::Rebind {
            bind_type: match p.bind_type.as_deref().unwrap_or("normal") {
                "normal" => v1::BindType::Normal,
                "fixed_imei" => v1::BindType::FixedImei,
                o => return Err(format!("--bind-type {o:?}: expected normal or fixed_imei")),
            } as i32,
            imei: p.imei.clone().unwrap_or_default(),
        }),
        OperationKind::SpeedLimit => O::SpeedLimit(v1::SpeedLimit {
            kbps: p.kbps.ok_or("speed_limit needs --kbps")?,
        }),
        OperationKind::NetworkCutoff => O::NetworkCutoff(v1::NetworkCutoff {}),
        OperationKind::NetworkRestore => O::NetworkRestore(v1::NetworkRestore {}),
        OperationKind::SetUsageThreshold => O::SetUsageThreshold(v1::SetUsageThreshold {
            threshold_mb: p
                .threshold_mb
                .ok_or("set_usage_threshold needs --threshold-mb")?,
        }),
        OperationKind::CancelUsageThreshold => O::CancelUsageThreshold(v1::CancelUsageThreshold {}),
        OperationKind::RegionBind => O::RegionBind(v1::RegionBind {
            region: p.region.clone().unwrap_or_default(),
        }),
        OperationKind::DirectionalAdd => O::DirectionalAdd(v1::DirectionalAdd {
            entries: p.entries.clone(),
        }),
        OperationKind::DirectionalModify => O::DirectionalModify(v1::DirectionalModify {
            entry_id: need(&p.entry_id, "entry-id")?,
            entry: need(&p.entry, "entry")?,
        }),
        OperationKind::DirectionalDelete => O::DirectionalDelete(v1::DirectionalDelete {
            entry_ids: p.entry_ids.clone(),
        }),
        OperationKind::SwitchNetwork => {
            let t: Carrier = need(&p.target, "target")?
                .parse()
                .map_err(|e| format!("--target: {e}"))?;
            O::SwitchNetwork(v1::SwitchNetwork {
                target: convert::carrier_to_wire(t) as i32,
            })
        }
        OperationKind::SwitchPolicy => O::SwitchPolicy(v1::SwitchPolicy {
            policy_id: need(&p.policy, "policy")?,
        }),
        OperationKind::CloseCard => O::CloseCard(v1::CloseCard {}),
    };
    Ok(v1::Operation { kind: Some(k) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_builds_or_names_its_flag() {
        for k in OperationKind::ALL {
            match operation(k, &Params::default()) {
                Ok(op) => assert_eq!(convert::operation_kind(&op), Some(k)),
                Err(e) => assert!(e.contains("--"), "{k}: {e}"),
            }
        }
        let p = Params {
            kbps: Some(512),
            ..Default::default()
        };
        assert!(operation(OperationKind::SpeedLimit, &p).is_ok());
        let p = Params {
            bind_type: Some("sideways".into()),
            ..Default::default()
        };
        assert!(operation(OperationKind::Rebind, &p).is_err());
    }
}

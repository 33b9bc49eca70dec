//! Operations from command-line flags.

use gsl_domain::OperationKind;
use gsl_proto::ops::{self, OpParams};
use gsl_proto::v1;

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

impl Params {
    /// The flags as the catalogue's parameters.
    pub fn to_op_params(&self) -> OpParams {
        let list = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
        OpParams {
            bind_type: self.bind_type.clone(),
            imei: self.imei.clone(),
            kbps: self.kbps,
            threshold_mb: self.threshold_mb,
            region: self.region.clone(),
            entries: list(&self.entries),
            entry_id: self.entry_id.clone(),
            entry: self.entry.clone(),
            entry_ids: list(&self.entry_ids),
            target: self.target.clone(),
            policy_id: self.policy.clone(),
        }
    }
}

/// Build the wire operation (`gsl_proto::ops`); `Err` names the flag that
/// is missing or wrong.
pub fn operation(kind: OperationKind, p: &Params) -> Result<v1::Operation, String> {
    ops::build(kind, &p.to_op_params()).map_err(|e| {
        let flag = match e.param {
            "policy_id" => "policy".to_owned(),
            other => other.replace('_', "-"),
        };
        match e.reason.as_str() {
            "is required" => format!("{kind} needs --{flag}"),
            reason => format!("--{flag}: {reason}"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gsl_proto::convert;

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

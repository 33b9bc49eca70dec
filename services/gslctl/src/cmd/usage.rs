//! `gslctl cards usage`: daily data usage of up to 500 cards
//! (`Registry.BatchUsage`, the reference's batch-daily-flow), every day of a
//! month (`--month yyyyMM`) or one day (`--date yyyyMMdd`).

use super::{Outcome, RegistryClient, say};
use crate::authed;
use crate::output::Format;
use crate::{EXIT_ITEMS_FAILED, EXIT_OK};
use gsl_proto::v1;
use serde_json::json;

#[derive(Debug, clap::Args)]
pub struct UsageArgs {
    /// Every day of this month (China time), e.g. 202612.
    #[arg(long, conflicts_with = "date", required_unless_present = "date")]
    month: Option<String>,
    /// This one day (China time), e.g. 20261203.
    #[arg(long)]
    date: Option<String>,
    /// Card ids (ICCID or container id), at most 500.
    #[arg(required = true, num_args = 1..=500)]
    ids: Vec<String>,
}

pub async fn usage(
    registry: &mut RegistryClient,
    tok: &str,
    format: Format,
    a: UsageArgs,
) -> Outcome {
    let r = registry
        .batch_usage(authed(
            tok,
            v1::BatchUsageRequest {
                month: a.month.unwrap_or_default(),
                date: a.date.unwrap_or_default(),
                cards: a.ids,
            },
        ))
        .await?
        .into_inner();
    say(
        format,
        || {
            let mut rows = Vec::new();
            for d in &r.days {
                for f in &d.sim_flow {
                    rows.push(vec![
                        d.date.clone(),
                        f.iccid.clone(),
                        f.flow.map_or_else(|| "-".into(), |mb| format!("{mb:.3}")),
                        if f.flow.is_none() {
                            String::new()
                        } else if f.derived {
                            "derived".into()
                        } else {
                            "carrier".into()
                        },
                    ]);
                }
            }
            let mut out = crate::output::table(&["DATE", "CARD", "MB", "SOURCE"], &rows);
            out.push_str(&super::refused_lines(&r.refused, "left out"));
            out
        },
        || {
            json!({
                "days": r.days.iter().map(|d| json!({
                    "date": d.date,
                    "sim_flow": d.sim_flow.iter().map(|f| json!({
                        "iccid": f.iccid,
                        "sim_card_id": f.sim_card_id,
                        "flow": f.flow,
                        "derived": f.derived,
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "refused": super::refused_json(&r.refused),
            })
        },
    );
    Ok(if r.refused.is_empty() {
        EXIT_OK
    } else {
        EXIT_ITEMS_FAILED
    })
}

//! The card registry: get, import, and seeding from the simulator.

use super::{Ctx, Outcome, RegistryClient, problems_out, say};
use crate::authed;
use crate::batch::{self, RowProblem};
use crate::output::Format;
use crate::{EXIT_FAILED, EXIT_INVALID, EXIT_ITEMS_FAILED, EXIT_OK};
use clap::Subcommand;
use gsl_domain::Carrier;
use gsl_proto::{convert, v1};
use serde_json::{Value, json};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum CardsCmd {
    /// Import cards from CSV / xlsx: id, carrier, sim_status, stop_reason, pooled, real_named, tri-net version, batch,
    /// then optionally msisdn, imsi, (China Telecom) access number, plan id, plan name, allowance MB, expiry and
    /// activation (RFC 3339 or YYYY-MM-DD), customer attributes 1-6 and sim type (1 vSIM, 2 eSIM, 3 physical).
    Import {
        file: PathBuf,
        /// Assign the cards to this tenant (with the operator credential).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Show a card: every field, and where each came from and when.
    Get { id: String },
    /// Read cards from their carriers now (at most 500; work orders keep
    /// their share of the budget first) and show them as read.
    Refresh {
        /// Card ids (ICCID or container id).
        #[arg(required = true, num_args = 1..=500)]
        ids: Vec<String>,
    },
    /// Daily data usage of up to 500 cards: every day of a month (`--month
    /// yyyyMM`) or one day (`--date yyyyMMdd`), China time.
    Usage(super::usage::UsageArgs),
    /// The card list: search, filters, sorts, a page (or `--csv`: every matching card).
    List(Box<super::cardlist::ListArgs>),
    /// Development: register the simulator's generated cards, with their numbers (MSISDN, IMSI,
    /// China Telecom access number). Purchase batches are registered with Registry.ImportBatches
    /// (see docs/operations.md).
    SeedFromSim {
        /// The simulator's base URL, e.g. http://127.0.0.1:7400
        sim: String,
        #[arg(long, default_value_t = 1000)]
        per_carrier: u64,
        /// Assign the cards to this tenant (with the operator credential).
        #[arg(long)]
        tenant: Option<String>,
    },
}

pub async fn run(ctx: &mut Ctx, cmd: CardsCmd) -> Outcome {
    let (format, tok) = (ctx.format, ctx.token.clone());
    let registry = &mut ctx.registry;
    match cmd {
        CardsCmd::Get { id } => super::cardlist::get(registry, &tok, format, id).await,
        CardsCmd::Refresh { ids } => refresh(registry, &tok, format, ids).await,
        CardsCmd::Usage(args) => super::usage::usage(registry, &tok, format, args).await,
        CardsCmd::List(args) => super::cardlist::list(registry, &tok, format, *args).await,
        CardsCmd::Import { file, tenant } => {
            let rows = match batch::read(&file) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("gslctl: {e}");
                    return Ok(EXIT_INVALID);
                }
            };
            let (mut cards, problems) = registry_cards(&rows);
            for c in &mut cards {
                c.tenant = tenant.clone().unwrap_or_default();
            }
            if !problems.is_empty() {
                problems_out(format, &problems);
                return Ok(EXIT_INVALID);
            }
            let mut imported = 0;
            let mut refused = 0;
            for chunk in cards.chunks(20_000) {
                let r = registry
                    .import_cards(authed(
                        &tok,
                        v1::ImportCardsRequest {
                            cards: chunk.to_vec(),
                        },
                    ))
                    .await?
                    .into_inner();
                imported += r.imported;
                refused += r.refused_total;
            }
            say(
                format,
                || format!("{imported} cards imported, {refused} refused\n"),
                || json!({"imported": imported, "refused": refused}),
            );
            Ok(if refused == 0 {
                EXIT_OK
            } else {
                EXIT_ITEMS_FAILED
            })
        }
        CardsCmd::SeedFromSim {
            sim,
            per_carrier,
            tenant,
        } => {
            seed_from_sim(
                registry,
                &tok,
                &sim,
                per_carrier,
                tenant.as_deref().unwrap_or_default(),
                format,
            )
            .await
        }
    }
}

/// Registry import rows: id, carrier, sim_status, stop_reason, pooled, real_named, tri-net version, batch.
/// `cards refresh`: one table row per card read, and each refusal.
async fn refresh(
    registry: &mut RegistryClient,
    tok: &str,
    format: Format,
    ids: Vec<String>,
) -> Outcome {
    let r = registry
        .refresh_cards(authed(tok, v1::RefreshCardsRequest { ids }))
        .await?
        .into_inner();
    say(
        format,
        || {
            let rows: Vec<Vec<String>> = r
                .cards
                .iter()
                .map(|c| {
                    let j = crate::output::card(c);
                    [
                        "cid",
                        "sim_status",
                        "operator_status",
                        "real_named",
                        "imei",
                        "synced_at",
                    ]
                    .iter()
                    .map(|k| match &j[*k] {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect()
                })
                .collect();
            let mut out = crate::output::table(
                &[
                    "CARD",
                    "STATUS",
                    "STOP REASON",
                    "REAL-NAMED",
                    "IMEI",
                    "READ AT",
                ],
                &rows,
            );
            out.push_str(&super::refused_lines(&r.refused, "not read"));
            out
        },
        || {
            json!({
                "cards": r.cards.iter().map(crate::output::card).collect::<Vec<_>>(),
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

pub fn registry_cards(rows: &[batch::Row]) -> (Vec<v1::Card>, Vec<RowProblem>) {
    let mut cards = Vec::new();
    let mut problems = Vec::new();
    for r in rows {
        let cell = |i: usize| r.cells.get(i).map(|s| s.trim()).unwrap_or("");
        let mut bad = |reason: String| {
            problems.push(RowProblem {
                line: r.line,
                card: cell(0).to_owned(),
                code: gsl_domain::ErrorCode::BadParameter,
                reason,
            })
        };
        let carrier = match cell(1).parse::<Carrier>() {
            Ok(c) => c,
            Err(e) => {
                bad(e.to_string());
                continue;
            }
        };
        let Ok(status) = cell(2).parse::<u32>() else {
            bad(format!(
                "sim_status {:?}: expected 10, 11, 13, 14, 20 or 30",
                cell(2)
            ));
            continue;
        };
        let flag = |s: &str| matches!(s.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "y");
        let allowance_mb = match cell(13) {
            "" => None,
            a => match a.parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => Some(v),
                _ => {
                    bad(format!("allowance_mb {a:?}: a number of MB"));
                    continue;
                }
            },
        };
        let (expire_time, act_date) = match (time_cell(cell(14)), time_cell(cell(15))) {
            (Ok(e), Ok(a)) => (e, a),
            (Err(e), _) | (_, Err(e)) => {
                bad(e);
                continue;
            }
        };
        let sim_type = match cell(22) {
            "" => 0,
            t => match t.parse::<u32>() {
                Ok(v @ 1..=3) => v,
                _ => {
                    bad(format!("sim_type {t:?}: 1 vSIM, 2 eSIM, 3 physical"));
                    continue;
                }
            },
        };
        let mut attrs: Vec<String> = (16..22).map(|i| cell(i).to_owned()).collect();
        while attrs.last().is_some_and(String::is_empty) {
            attrs.pop();
        }
        cards.push(v1::Card {
            id: cell(0).to_owned(),
            carrier: convert::carrier_to_wire(carrier) as i32,
            sim_status: status,
            stop_reason: cell(3).parse().unwrap_or(-1),
            pooled: flag(cell(4)),
            real_named: flag(cell(5)),
            trinet_version: match cell(6) {
                "sdk" => v1::TriNetVersion::Sdk as i32,
                "no_sdk" => v1::TriNetVersion::NoSdk as i32,
                _ => 0,
            },
            batch_no: cell(7).to_owned(),
            threshold_mb: -1,
            msisdn: cell(8).to_owned(),
            imsi: cell(9).to_owned(),
            access_number: cell(10).to_owned(),
            plan_id: cell(11).to_owned(),
            plan_name: cell(12).to_owned(),
            allowance_mb,
            expire_time,
            act_date,
            customer_attributes: attrs,
            sim_type,
            ..Default::default()
        });
    }
    (cards, problems)
}

/// An import's time cell: RFC 3339, or a date (midnight UTC); empty: none.
fn time_cell(s: &str) -> Result<Option<prost_types::Timestamp>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
        })
        .map_err(|_| format!("{s:?}: a time (RFC 3339) or a date (YYYY-MM-DD)"))?;
    Ok(Some(convert::timestamp(t)))
}

async fn seed_from_sim(
    registry: &mut RegistryClient,
    token: &str,
    sim: &str,
    per_carrier: u64,
    tenant: &str,
    format: Format,
) -> Result<i32, tonic::Status> {
    let http = reqwest::Client::new();
    let sim = sim.trim_end_matches('/');
    let mut total = 0;
    for c in Carrier::ALL {
        let url = format!(
            "{sim}/admin/{}/cards?offset=0&limit={per_carrier}",
            c.as_str()
        );
        let page: Vec<Value> = match http.get(&url).send().await {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(e) => {
                eprintln!("gslctl: {url}: {e}");
                return Ok(EXIT_FAILED);
            }
        };
        let cards: Vec<v1::Card> = page
            .iter()
            .map(|v| {
                let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
                v1::Card {
                    id: s("id"),
                    carrier: convert::carrier_to_wire(c) as i32,
                    sim_status: match s("status").as_str() {
                        "testable" => 10,
                        "not_activated" => 11,
                        "activatable" => 13,
                        "stopped" => 14,
                        "closed" => 30,
                        _ => 20,
                    },
                    stop_reason: match s("stop_reason").as_str() {
                        "over_plan_quota" => 1,
                        "over_threshold" => 2,
                        "pool_exhausted" => 3,
                        "plan_expired" => 4,
                        "on_request" => 5,
                        "violation" => 6,
                        "device_separation" => 7,
                        _ => -1,
                    },
                    pooled: v["pooled"].as_bool().unwrap_or(false),
                    real_named: v["real_named"].as_bool().unwrap_or(false),
                    trinet_version: match s("trinet_version").as_str() {
                        "sdk" => v1::TriNetVersion::Sdk as i32,
                        "no_sdk" => v1::TriNetVersion::NoSdk as i32,
                        _ => 0,
                    },
                    imei: s("imei"),
                    threshold_mb: v["threshold_mb"].as_i64().unwrap_or(-1),
                    batch_no: s("batch_no"),
                    msisdn: s("msisdn"),
                    imsi: s("imsi"),
                    // A China Telecom card's access number is its number.
                    access_number: if c == Carrier::Ct {
                        s("msisdn")
                    } else {
                        String::new()
                    },
                    tenant: tenant.to_owned(),
                    ..Default::default()
                }
            })
            .collect();
        for chunk in cards.chunks(20_000) {
            total += registry
                .import_cards(authed(
                    token,
                    v1::ImportCardsRequest {
                        cards: chunk.to_vec(),
                    },
                ))
                .await?
                .into_inner()
                .imported;
        }
    }
    say(
        format,
        || format!("{total} cards registered from {sim}\n"),
        || json!({"imported": total}),
    );
    Ok(EXIT_OK)
}

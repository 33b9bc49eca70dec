//! `gslctl submit`: one operation for cards (inline or from a batch file)
//! or for a purchase batch.

use super::{Ctx, Outcome, problems_out, say};
use crate::authed;
use crate::batch::{self, RowProblem};
use crate::ops::{self, Params};
use crate::output::{self, Format};
use crate::{EXIT_INVALID, EXIT_ITEMS_FAILED, EXIT_OK};
use gsl_domain::OperationKind;
use gsl_proto::v1;
use serde_json::json;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    /// activate, stop, resume, rebind, speed_limit, network_cutoff, network_restore,
    /// set_usage_threshold, cancel_usage_threshold, region_bind, directional_add,
    /// directional_modify, directional_delete, switch_network, switch_policy, close_card
    pub operation: String,
    /// Card ids (ICCID or container id).
    pub cards: Vec<String>,
    /// A CSV or xlsx batch file (column A: container id; see `gslctl submit --help`).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Directional config: the purchase batch number.
    #[arg(long)]
    pub batch: Option<String>,
    /// Idempotency key (default: generated and printed; reuse it to retry safely).
    #[arg(long)]
    pub key: Option<String>,
    /// Hold the order for review (approve it later).
    #[arg(long)]
    pub hold: bool,
    #[arg(long, default_value = "")]
    pub note: String,
    /// Check every row and report the bad ones; send nothing.
    #[arg(long)]
    pub validate_only: bool,
    /// Send the valid rows even if some rows are bad.
    #[arg(long)]
    pub skip_bad_rows: bool,
    /// Follow the order with a progress bar until it ends.
    #[arg(long)]
    pub watch: bool,
    #[command(flatten)]
    pub params: Params,
}

type Prepared = (OperationKind, Vec<RowProblem>, Vec<v1::CardRef>);

/// Read and check the cards of a submit, without the gateway.
fn prepare(a: &SubmitArgs) -> Result<Prepared, (i32, String)> {
    let kind: OperationKind = a
        .operation
        .parse()
        .map_err(|e| (EXIT_INVALID, format!("{e}")))?;
    let mut rows: Vec<batch::Row> = a
        .cards
        .iter()
        .enumerate()
        .map(|(i, c)| batch::Row {
            line: i + 1,
            cells: vec![c.clone()],
        })
        .collect();
    if let Some(f) = &a.file {
        rows = batch::read(f).map_err(|e| (EXIT_INVALID, e.to_string()))?;
    }
    if kind.is_directional() {
        if a.batch.is_none() {
            return Err((
                EXIT_INVALID,
                format!("{kind} acts on a purchase batch: give --batch"),
            ));
        }
        return Ok((kind, Vec::new(), Vec::new()));
    }
    if rows.is_empty() {
        return Err((EXIT_INVALID, "no cards: give card ids or --file".into()));
    }
    let max = gsl_domain::limits::max_items(kind);
    if rows.len() > max {
        return Err((
            EXIT_INVALID,
            format!(
                "{kind} takes at most {max} cards per order; the file has {} rows",
                rows.len()
            ),
        ));
    }
    let (refs, problems) = batch::cards(kind, &rows);
    Ok((kind, problems, refs))
}

/// `--validate-only`: check every row, send nothing.
pub fn validate_only(a: &SubmitArgs, format: Format) -> i32 {
    match prepare(a) {
        Err((code, msg)) => {
            eprintln!("gslctl: {msg}");
            code
        }
        Ok((_, problems, refs)) if problems.is_empty() => {
            say(
                format,
                || format!("all {} rows are valid\n", refs.len()),
                || json!({"valid": true, "rows": refs.len()}),
            );
            EXIT_OK
        }
        Ok((_, problems, _)) => {
            problems_out(format, &problems);
            EXIT_INVALID
        }
    }
}

pub async fn run(ctx: &mut Ctx, a: SubmitArgs) -> Outcome {
    let (format, tok) = (ctx.format, ctx.token.clone());
    let orders = &mut ctx.orders;
    let (kind, problems, refs) = match prepare(&a) {
        Ok(x) => x,
        Err((code, msg)) => {
            eprintln!("gslctl: {msg}");
            return Ok(code);
        }
    };
    if !problems.is_empty() && !a.skip_bad_rows {
        problems_out(format, &problems);
        eprintln!(
            "gslctl: {} bad rows; nothing sent (fix them, or --skip-bad-rows)",
            problems.len()
        );
        return Ok(EXIT_INVALID);
    }
    let op = match ops::operation(kind, &a.params) {
        Ok(op) => op,
        Err(e) => {
            eprintln!("gslctl: {e}");
            return Ok(EXIT_INVALID);
        }
    };
    let key = a.key.clone().unwrap_or_else(|| {
        format!(
            "gslctl-{}-{}",
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default(),
            std::process::id()
        )
    });
    let resp = orders
        .submit(authed(
            &tok,
            v1::SubmitRequest {
                idempotency_key: key.clone(),
                operation: Some(op),
                cards: refs,
                batch_no: a.batch.clone().unwrap_or_default(),
                hold_for_review: a.hold,
                note: a.note.clone(),
            },
        ))
        .await?
        .into_inner();
    let o = resp.work_order.clone().unwrap_or_default();
    say(
        format,
        || {
            let mut t = format!(
                "work order {} {}: {} items, {} refused (idempotency key {key}{})\n",
                o.id,
                output::order(&o)["status"].as_str().unwrap_or(""),
                o.total,
                resp.refused,
                if resp.replayed { ", replayed" } else { "" }
            );
            if !resp.refusals.is_empty() {
                let rows: Vec<Vec<String>> = resp
                    .refusals
                    .iter()
                    .map(|r| {
                        let p = r.problem.clone().unwrap_or_default();
                        vec![r.index.to_string(), r.card.clone(), p.code, p.message]
                    })
                    .collect();
                t.push_str(&output::table(&["#", "CARD", "CODE", "REASON"], &rows));
            }
            t
        },
        || output::submitted(&resp),
    );
    if a.watch {
        let done = crate::watch::follow(orders, &tok, o.id, format == Format::Table).await?;
        say(
            format,
            || output::order_rows(std::slice::from_ref(&done)),
            || output::order(&done),
        );
        return Ok(
            if done.failed > 0 || done.status == v1::WorkOrderStatus::Rejected as i32 {
                EXIT_ITEMS_FAILED
            } else {
                EXIT_OK
            },
        );
    }
    Ok(if o.status == v1::WorkOrderStatus::Rejected as i32 {
        EXIT_ITEMS_FAILED
    } else {
        EXIT_OK
    })
}

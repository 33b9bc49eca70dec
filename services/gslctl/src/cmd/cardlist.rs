//! `gslctl cards list` and `gslctl cards get`: the fleet as the reference
//! service's card list shows it. A list prints one page (table or JSON,
//! with the total); `--csv` writes every matching card, walking the list
//! with its cursor 500 at a time and streaming each page out as it
//! arrives (a progress bar on a terminal's stderr), so a whole fleet's
//! export holds one page in memory.

use super::{Outcome, RegistryClient, say};
use crate::authed;
use crate::output::{self, Format};
use crate::{EXIT_FAILED, EXIT_OK};
use clap::Args;
use gsl_proto::v1;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use std::io::{IsTerminal, Write};

/// What `cards list` asks (the reference's names).
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Cards per page, 10-500.
    #[arg(long, default_value_t = 10)]
    pub limit: u32,
    /// Page number, from 1.
    #[arg(long, default_value_t = 1)]
    pub offset: u32,
    /// Container id (ICCID, EID or CID), exact.
    #[arg(long, conflicts_with_all = ["batch", "imei"])]
    pub cid: Option<String>,
    /// Purchase batch number (search).
    #[arg(long, conflicts_with = "imei")]
    pub batch: Option<String>,
    /// Device IMEI.
    #[arg(long)]
    pub imei: Option<String>,
    #[arg(long)]
    pub msisdn: Option<String>,
    /// sim_status codes (10, 11, 13, 14, 20, 30), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub status: Vec<u32>,
    #[arg(long)]
    pub real_named: Option<bool>,
    #[arg(long)]
    pub min_used: Option<f64>,
    #[arg(long)]
    pub max_used: Option<f64>,
    #[arg(long)]
    pub min_left: Option<f64>,
    #[arg(long)]
    pub max_left: Option<f64>,
    /// A customer attribute, as N=VALUE (N 1-6); repeatable.
    #[arg(long = "attr", value_parser = parse_attr)]
    pub attrs: Vec<(usize, String)>,
    /// Purchase orders (batches), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub order_ids: Vec<String>,
    /// Plans, comma-separated (at most 30).
    #[arg(long, value_delimiter = ',')]
    pub plans: Vec<String>,
    /// 1 vSIM, 2 eSIM, 3 physical.
    #[arg(long)]
    pub sim_type: Option<u32>,
    /// Hide cards stopped to keep their number.
    #[arg(long)]
    pub hide_downtime: bool,
    /// cid, flow_used, flow_left, act_date or expire_time.
    #[arg(long, default_value = "cid")]
    pub sort: String,
    #[arg(long)]
    pub desc: bool,
    /// The operator only: whose cards.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Write every matching card as CSV to stdout (all pages).
    #[arg(long)]
    pub csv: bool,
}

fn parse_attr(s: &str) -> Result<(usize, String), String> {
    let (n, v) = s.split_once('=').ok_or("expected N=VALUE")?;
    match n.trim().parse::<usize>() {
        Ok(n @ 1..=6) => Ok((n, v.to_owned())),
        _ => Err(format!("attribute number {n:?}: 1-6")),
    }
}

fn request(a: &ListArgs) -> v1::ListCardsRequest {
    let (kind, key) = match (&a.cid, &a.batch, &a.imei) {
        (Some(c), _, _) => (1, c.clone()),
        (_, Some(b), _) => (2, b.clone()),
        (_, _, Some(i)) => (3, i.clone()),
        _ => (0, String::new()),
    };
    let attr = |n: usize| {
        a.attrs
            .iter()
            .rev()
            .find(|(i, _)| *i == n)
            .map(|(_, v)| v.clone())
    };
    v1::ListCardsRequest {
        limit: a.limit,
        offset: a.offset,
        main_search_type: kind,
        main_search_key: key,
        msisdn: a.msisdn.clone().unwrap_or_default(),
        sim_status: a.status.clone(),
        real_named: a.real_named,
        min_used_flow: a.min_used,
        max_used_flow: a.max_used,
        min_left_flow: a.min_left,
        max_left_flow: a.max_left,
        customer_attribute1: attr(1),
        customer_attribute2: attr(2),
        customer_attribute3: attr(3),
        customer_attribute4: attr(4),
        customer_attribute5: attr(5),
        customer_attribute6: attr(6),
        order_ids: a.order_ids.clone(),
        price_plan_ids: a.plans.clone(),
        sim_type: a.sim_type.unwrap_or(0),
        filter_downtime_period: a.hide_downtime,
        sort: a.sort.clone(),
        order: if a.desc { "desc" } else { "asc" }.into(),
        page_token: String::new(),
        tenant: a.tenant.clone().unwrap_or_default(),
    }
}

/// The CSV columns of an export (the reference's field names).
const CSV_COLUMNS: [&str; 24] = [
    "cid",
    "sim_status",
    "operator_status",
    "imei",
    "msisdn",
    "imsi",
    "order_id",
    "price_plan_id",
    "price_plan_name",
    "act_date",
    "expire_time",
    "flow_used",
    "flow_used_as_of",
    "flow_left",
    "real_named",
    "speed_value",
    "exceed_cut_net_quota",
    "sim_type",
    "customer_attribute1",
    "customer_attribute2",
    "customer_attribute3",
    "customer_attribute4",
    "customer_attribute5",
    "customer_attribute6",
];

fn csv_row(c: &v1::Card) -> Vec<String> {
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    let mut row = vec![
        c.id.clone(),
        c.sim_status.to_string(),
        c.stop_reason.to_string(),
        c.imei.clone(),
        c.msisdn.clone(),
        c.imsi.clone(),
        c.batch_no.clone(),
        c.plan_id.clone(),
        c.plan_name.clone(),
        output::time(&c.act_date),
        output::time(&c.expire_time),
        opt(c.flow_used_mb),
        output::time(&c.flow_used_at),
        opt(c.flow_left_mb),
        c.real_named.to_string(),
        c.speed_kbps.to_string(),
        c.threshold_mb.to_string(),
        c.sim_type.to_string(),
    ];
    for i in 0..6 {
        row.push(c.customer_attributes.get(i).cloned().unwrap_or_default());
    }
    row
}

pub async fn list(
    registry: &mut RegistryClient,
    token: &str,
    format: Format,
    a: ListArgs,
) -> Outcome {
    let mut req = request(&a);
    if a.csv {
        return export(registry, token, req).await;
    }
    let r = registry
        .list_cards(authed(token, req.clone()))
        .await?
        .into_inner();
    req.page_token.clear();
    say(
        format,
        || {
            let rows: Vec<Vec<String>> = r
                .sim_cards
                .iter()
                .map(|c| {
                    vec![
                        c.id.clone(),
                        c.sim_status.to_string(),
                        c.stop_reason.to_string(),
                        c.batch_no.clone(),
                        c.plan_name.clone(),
                        output::mb(c.flow_used_mb),
                        output::mb(c.flow_left_mb),
                        output::time(&c.expire_time),
                    ]
                })
                .collect();
            let mut out = output::table(
                &[
                    "CID",
                    "STATUS",
                    "OP_STATUS",
                    "BATCH",
                    "PLAN",
                    "USED_MB",
                    "LEFT_MB",
                    "EXPIRES",
                ],
                &rows,
            );
            out.push_str(&format!(
                "page {} of {} a page; {}{} cards\n",
                r.offset,
                r.limit,
                if r.count_estimated { "about " } else { "" },
                r.count
            ));
            out
        },
        || {
            json!({
                "limit": r.limit, "offset": r.offset, "count": r.count,
                "count_estimated": r.count_estimated,
                "next_page_token": r.next_page_token,
                "sim_cards": r.sim_cards.iter().map(output::card).collect::<Vec<Value>>(),
            })
        },
    );
    Ok(EXIT_OK)
}

/// Every matching card as CSV, page by page through the cursor.
async fn export(
    registry: &mut RegistryClient,
    token: &str,
    mut req: v1::ListCardsRequest,
) -> Outcome {
    req.limit = 500;
    req.offset = 0;
    let stdout = std::io::stdout();
    let mut w = csv::Writer::from_writer(stdout.lock());
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("gslctl: writing CSV: {e}");
        Ok(EXIT_FAILED)
    };
    if let Err(e) = w.write_record(CSV_COLUMNS) {
        return fail(&e);
    }
    let pb = if std::io::stderr().is_terminal() {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    pb.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} cards  {per_sec}  ETA {eta}")
            .expect("static template")
            .progress_chars("=> "),
    );
    loop {
        let r = registry
            .list_cards(authed(token, req.clone()))
            .await?
            .into_inner();
        pb.set_length(r.count);
        for c in &r.sim_cards {
            if let Err(e) = w.write_record(csv_row(c)) {
                return fail(&e);
            }
        }
        pb.inc(r.sim_cards.len() as u64);
        if let Err(e) = w.flush() {
            return fail(&e);
        }
        if r.next_page_token.is_empty() {
            break;
        }
        req.page_token = r.next_page_token;
    }
    pb.finish_and_clear();
    if let Err(e) = w.flush().and_then(|_| std::io::stdout().flush()) {
        return fail(&e);
    }
    Ok(EXIT_OK)
}

/// `cards get`: every field this project can know, where it came from.
pub async fn get(
    registry: &mut RegistryClient,
    token: &str,
    format: Format,
    id: String,
) -> Outcome {
    let c = registry
        .get_card(authed(token, v1::GetCardRequest { id }))
        .await?
        .into_inner();
    let j = output::card(&c);
    say(
        format,
        || {
            let mut rows: Vec<Vec<String>> = Vec::new();
            if let Value::Object(m) = &j {
                for (k, v) in m {
                    if k == "sources" {
                        continue;
                    }
                    let text = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    rows.push(vec![k.clone(), text]);
                }
            }
            let mut out = output::table(&["FIELD", "VALUE"], &rows);
            let src: Vec<Vec<String>> = c
                .sources
                .iter()
                .map(|s| {
                    vec![
                        s.field.clone(),
                        output::source(s.source),
                        output::time(&s.at),
                    ]
                })
                .collect();
            out.push('\n');
            out.push_str(&output::table(&["FIELDS", "FROM", "AS OF"], &src));
            out
        },
        || j.clone(),
    );
    Ok(EXIT_OK)
}

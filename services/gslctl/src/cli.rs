//! The command line, and what each command does.

use crate::batch::{self, RowProblem};
use crate::ops::{self, Params};
use crate::output::{self, Format};
use crate::{EXIT_FAILED, EXIT_INVALID, EXIT_ITEMS_FAILED, EXIT_OK, exit_for};
use clap::{Parser, Subcommand};
use gsl_domain::{Carrier, OperationKind};
use gsl_proto::{convert, v1};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

#[derive(Debug, Parser)]
#[command(
    name = "gslctl",
    version,
    about = "Operate the SIM carrier gateway: submit work orders, follow them, inspect them."
)]
pub struct Cli {
    /// Gateway gRPC address.
    #[arg(long, env = "GSL_GATEWAY", global = true)]
    pub gateway: Option<String>,
    /// Bearer token for the command. Without it each command group takes the
    /// credential of its role: the tenant's (`GSL_TOKEN`, or `token =` in the
    /// config file) for orders and cards, the operator's
    /// (`GSL_OPERATOR_TOKEN`, or `operator_token =`) for `backoffice`,
    /// `cards import --tenant` and `cards seed-from-sim`.
    #[arg(long, hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// CA certificate (PEM) for a gateway behind TLS.
    #[arg(long, env = "GSL_CA_CERT", global = true)]
    pub ca_cert: Option<PathBuf>,
    /// Config file with `gateway = ...`, `token = ...` and `operator_token = ...` lines.
    #[arg(long, env = "GSLCTL_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Format::Table, global = true)]
    pub output: Format,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Work the back-office queue (operator credential: --token, or GSL_OPERATOR_TOKEN).
    #[command(subcommand)]
    Backoffice(crate::backoffice::BackOfficeCmd),
    /// Submit one operation for cards (inline or from a CSV / xlsx file) or for a purchase batch.
    Submit(Box<SubmitArgs>),
    /// Show a work order.
    Get { id: u64 },
    /// List work orders.
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        operation: Option<String>,
        #[arg(long)]
        carrier: Option<String>,
        #[arg(long)]
        card: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// List the items (cards) of a work order.
    Items {
        id: u64,
        /// processing, succeeded or failed.
        #[arg(long)]
        status: Option<String>,
    },
    /// Every work order that touched a card.
    History { card: String },
    /// Cancel an order still in review.
    Cancel { id: u64 },
    /// Approve an order held for review.
    Approve { id: u64 },
    /// Reject an order held for review.
    Reject {
        id: u64,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Follow an order with a progress bar until it ends.
    Watch { id: u64 },
    /// The card registry.
    Cards {
        #[command(subcommand)]
        cmd: CardsCmd,
    },
}

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

#[derive(Debug, Subcommand)]
pub enum CardsCmd {
    /// Import cards from CSV / xlsx: id, carrier, sim_status, stop_reason, pooled, real_named, tri-net version, batch,
    /// then optionally msisdn, imsi and (China Telecom) access number.
    Import {
        file: PathBuf,
        /// Assign the cards to this tenant (with the operator credential).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Show a card.
    Get { id: String },
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

/// Settings after flags, environment and the config file.
struct Settings {
    gateway: String,
    /// `--token`: wins for every command.
    explicit: Option<String>,
    file_token: Option<String>,
    file_operator_token: Option<String>,
    ca: Option<PathBuf>,
}

/// Whose credential a command needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Tenant,
    Operator,
}

impl Settings {
    /// The credential for `role`: `--token`, then the role's own variable,
    /// then the role's line of the config file. Another role's credential is
    /// never used (with `stack.env` sourced, the tenant's `GSL_TOKEN` must
    /// not stand in for the operator's).
    fn token(&self, role: Role) -> String {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let (var, file) = match role {
            Role::Tenant => ("GSL_TOKEN", &self.file_token),
            Role::Operator => ("GSL_OPERATOR_TOKEN", &self.file_operator_token),
        };
        self.explicit
            .clone()
            .or_else(|| env(var))
            .or_else(|| file.clone())
            .unwrap_or_default()
    }
}

/// The role a command acts in.
pub fn role_of(cmd: &Cmd) -> Role {
    match cmd {
        Cmd::Backoffice(_) => Role::Operator,
        Cmd::Cards {
            cmd: CardsCmd::Import {
                tenant: Some(_), ..
            },
        } => Role::Operator,
        Cmd::Cards {
            cmd: CardsCmd::SeedFromSim { .. },
        } => Role::Operator,
        _ => Role::Tenant,
    }
}

fn settings(cli: &Cli) -> Settings {
    let path = cli.config.clone().or_else(|| {
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/gslctl/config"))
    });
    let mut file_gateway = None;
    let mut file_token = None;
    let mut file_operator_token = None;
    if let Some(text) = path.and_then(|p| std::fs::read_to_string(p).ok()) {
        for line in text.lines() {
            if let Some((k, v)) = line.split_once('=') {
                match k.trim() {
                    "gateway" => file_gateway = Some(v.trim().to_owned()),
                    "token" => file_token = Some(v.trim().to_owned()),
                    "operator_token" => file_operator_token = Some(v.trim().to_owned()),
                    _ => {}
                }
            }
        }
    }
    Settings {
        gateway: cli
            .gateway
            .clone()
            .or(file_gateway)
            .unwrap_or_else(|| "http://127.0.0.1:50051".into()),
        explicit: cli.token.clone(),
        file_token,
        file_operator_token,
        ca: cli.ca_cert.clone(),
    }
}

async fn channel(s: &Settings) -> Result<Channel, String> {
    let mut ep = Endpoint::from_shared(s.gateway.clone())
        .map_err(|e| format!("gateway address {:?}: {e}", s.gateway))?
        .connect_timeout(Duration::from_secs(5));
    if let Some(ca) = &s.ca {
        let pem = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
        ep = ep
            .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))
            .map_err(|e| e.to_string())?;
    }
    ep.connect()
        .await
        .map_err(|e| format!("cannot reach the gateway at {}: {e}", s.gateway))
}

fn say(format: Format, table: impl FnOnce() -> String, json_value: impl FnOnce() -> Value) {
    match format {
        Format::Table => print!("{}", table()),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json_value()).expect("JSON values serialise")
        ),
    }
}

fn problems_out(format: Format, problems: &[RowProblem]) {
    say(
        format,
        || {
            let rows: Vec<Vec<String>> = problems
                .iter()
                .map(|p| {
                    vec![
                        p.line.to_string(),
                        p.card.clone(),
                        p.code.code().to_owned(),
                        p.reason.clone(),
                    ]
                })
                .collect();
            output::table(&["ROW", "CARD", "CODE", "REASON"], &rows)
        },
        || json!({"valid": false, "problems": problems.iter().map(|p| json!({"row": p.line, "card": p.card, "code": p.code.code(), "reason": p.reason})).collect::<Vec<_>>()}),
    );
}

/// Run a command line; returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    let s = settings(&cli);
    let format = cli.output;
    let tok = s.token(role_of(&cli.cmd));
    // Validation that needs no gateway comes first.
    if let Cmd::Submit(a) = &cli.cmd
        && a.validate_only
    {
        return match prepare(a) {
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
        };
    }
    let ch = match channel(&s).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gslctl: {e}");
            return EXIT_FAILED;
        }
    };
    let mut orders = v1::work_orders_client::WorkOrdersClient::new(ch.clone())
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    let mut registry =
        v1::registry_client::RegistryClient::new(ch.clone()).max_encoding_message_size(64 << 20);
    let r: Result<i32, tonic::Status> = async {
        match cli.cmd {
            Cmd::Backoffice(b) => crate::backoffice::run(ch, &tok, format, b).await,
            Cmd::Submit(a) => {
                let (kind, problems, refs) = match prepare(&a) {
                    Ok(x) => x,
                    Err((code, msg)) => {
                        eprintln!("gslctl: {msg}");
                        return Ok(code);
                    }
                };
                if !problems.is_empty() && !a.skip_bad_rows {
                    problems_out(format, &problems);
                    eprintln!("gslctl: {} bad rows; nothing sent (fix them, or --skip-bad-rows)", problems.len());
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
                    format!("gslctl-{}-{}", chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default(), std::process::id())
                });
                let resp = orders
                    .submit(authed(&tok, v1::SubmitRequest {
                        idempotency_key: key.clone(),
                        operation: Some(op),
                        cards: refs,
                        batch_no: a.batch.clone().unwrap_or_default(),
                        hold_for_review: a.hold,
                        note: a.note.clone(),
                    }))
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
                    let done = crate::watch::follow(&mut orders, &tok, o.id, format == Format::Table).await?;
                    say(format, || output::order_rows(std::slice::from_ref(&done)), || output::order(&done));
                    return Ok(if done.failed > 0 || done.status == v1::WorkOrderStatus::Rejected as i32 { EXIT_ITEMS_FAILED } else { EXIT_OK });
                }
                Ok(if o.status == v1::WorkOrderStatus::Rejected as i32 { EXIT_ITEMS_FAILED } else { EXIT_OK })
            }
            Cmd::Get { id } => {
                let o = orders.get(authed(&tok, v1::GetRequest { id })).await?.into_inner();
                say(format, || output::order_rows(std::slice::from_ref(&o)), || output::order(&o));
                Ok(EXIT_OK)
            }
            Cmd::List { status, operation, carrier, card, limit } => {
                let status = match status.as_deref().map(parse_status).transpose() {
                    Ok(s) => s.unwrap_or(0),
                    Err(e) => {
                        eprintln!("gslctl: {e}");
                        return Ok(EXIT_INVALID);
                    }
                };
                let operation = match operation.as_deref().map(str::parse::<OperationKind>).transpose() {
                    Ok(k) => k.map(|k| convert::kind_to_wire(k) as i32).unwrap_or(0),
                    Err(e) => {
                        eprintln!("gslctl: {e}");
                        return Ok(EXIT_INVALID);
                    }
                };
                let carrier = match carrier.as_deref().map(str::parse::<Carrier>).transpose() {
                    Ok(c) => c.map(|c| convert::carrier_to_wire(c) as i32).unwrap_or(0),
                    Err(e) => {
                        eprintln!("gslctl: {e}");
                        return Ok(EXIT_INVALID);
                    }
                };
                let l = orders
                    .list(authed(&tok, v1::ListRequest { status, operation, carrier, card: card.unwrap_or_default(), page_size: limit, ..Default::default() }))
                    .await?
                    .into_inner();
                say(format, || output::order_rows(&l.work_orders), || json!(l.work_orders.iter().map(output::order).collect::<Vec<_>>()));
                Ok(EXIT_OK)
            }
            Cmd::Items { id, status } => {
                let status = match status.as_deref() {
                    None => 0,
                    Some("processing") => v1::ItemStatus::Processing as i32,
                    Some("succeeded") => v1::ItemStatus::Succeeded as i32,
                    Some("failed") => v1::ItemStatus::Failed as i32,
                    Some(o) => {
                        eprintln!("gslctl: --status {o:?}: expected processing, succeeded or failed");
                        return Ok(EXIT_INVALID);
                    }
                };
                let mut all = Vec::new();
                let mut page_token = String::new();
                loop {
                    let r = orders
                        .list_items(authed(&tok, v1::ListItemsRequest { work_order_id: id, status, page_size: 500, page_token: page_token.clone() }))
                        .await?
                        .into_inner();
                    all.extend(r.items);
                    if r.next_page_token.is_empty() {
                        break;
                    }
                    page_token = r.next_page_token;
                }
                say(format, || output::item_rows(&all), || json!(all.iter().map(output::item).collect::<Vec<_>>()));
                Ok(EXIT_OK)
            }
            Cmd::History { card } => {
                let h = orders.card_history(authed(&tok, v1::CardHistoryRequest { card, page_size: 500, ..Default::default() })).await?.into_inner();
                say(
                    format,
                    || {
                        let rows: Vec<Vec<String>> = h
                            .entries
                            .iter()
                            .map(|e| {
                                let j = output::history(e);
                                vec![e.work_order_id.to_string(), j["operation"].as_str().unwrap_or("").into(), j["status"].as_str().unwrap_or("").into(), j["at"].as_str().unwrap_or("").into()]
                            })
                            .collect();
                        output::table(&["ORDER", "OPERATION", "STATUS", "AT"], &rows)
                    },
                    || json!(h.entries.iter().map(output::history).collect::<Vec<_>>()),
                );
                Ok(EXIT_OK)
            }
            Cmd::Cancel { id } | Cmd::Approve { id } | Cmd::Reject { id, .. } => {
                let o = match &cli.cmd {
                    Cmd::Cancel { .. } => orders.cancel(authed(&tok, v1::OrderRef { id })).await?,
                    Cmd::Approve { .. } => orders.approve(authed(&tok, v1::OrderRef { id })).await?,
                    Cmd::Reject { reason, .. } => orders.reject(authed(&tok, v1::RejectRequest { id, reason: reason.clone() })).await?,
                    _ => unreachable!("matched above"),
                }
                .into_inner();
                say(format, || output::order_rows(std::slice::from_ref(&o)), || output::order(&o));
                Ok(EXIT_OK)
            }
            Cmd::Watch { id } => {
                let done = crate::watch::follow(&mut orders, &tok, id, format == Format::Table).await?;
                say(format, || output::order_rows(std::slice::from_ref(&done)), || output::order(&done));
                Ok(if done.failed > 0 { EXIT_ITEMS_FAILED } else { EXIT_OK })
            }
            Cmd::Cards { cmd: CardsCmd::Get { id } } => {
                let c = registry.get_card(authed(&tok, v1::GetCardRequest { id })).await?.into_inner();
                let j = json!({"id": c.id, "carrier": convert::carrier_from_wire(c.carrier).map(|c| c.as_str()).unwrap_or(""), "msisdn": c.msisdn, "imsi": c.imsi, "access_number": c.access_number, "sim_status": c.sim_status, "stop_reason": c.stop_reason, "pooled": c.pooled, "real_named": c.real_named, "imei": c.imei, "speed_kbps": c.speed_kbps, "threshold_mb": c.threshold_mb, "batch_no": c.batch_no});
                say(format, || format!("{}\n", serde_json::to_string_pretty(&j).unwrap_or_default()), || j.clone());
                Ok(EXIT_OK)
            }
            Cmd::Cards { cmd: CardsCmd::Import { file, tenant } } => {
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
                    let r = registry.import_cards(authed(&tok, v1::ImportCardsRequest { cards: chunk.to_vec() })).await?.into_inner();
                    imported += r.imported;
                    refused += r.refused_total;
                }
                say(format, || format!("{imported} cards imported, {refused} refused\n"), || json!({"imported": imported, "refused": refused}));
                Ok(if refused == 0 { EXIT_OK } else { EXIT_ITEMS_FAILED })
            }
            Cmd::Cards { cmd: CardsCmd::SeedFromSim { sim, per_carrier, tenant } } => seed_from_sim(&mut registry, &tok, &sim, per_carrier, tenant.as_deref().unwrap_or_default(), format).await,
        }
    }
    .await;
    match r {
        Ok(code) => code,
        Err(s) => {
            eprintln!("gslctl: {}", s.message());
            exit_for(&s)
        }
    }
}

/// A request with the bearer token.
pub fn authed<T>(token: &str, m: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(m);
    if let Ok(v) = format!("Bearer {token}").parse() {
        r.metadata_mut().insert("authorization", v);
    }
    r
}

fn parse_status(s: &str) -> Result<i32, String> {
    gsl_domain::workorder::WorkOrderStatus::ALL
        .into_iter()
        .find(|x| x.as_str() == s)
        .map(|x| convert::status_to_wire(x) as i32)
        .ok_or_else(|| format!("--status {s:?}: expected in_review, approved, processing, completed, failed, cancelled or rejected"))
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

/// Registry import rows: id, carrier, sim_status, stop_reason, pooled, real_named, tri-net version, batch.
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
            ..Default::default()
        });
    }
    (cards, problems)
}

async fn seed_from_sim(
    registry: &mut v1::registry_client::RegistryClient<Channel>,
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

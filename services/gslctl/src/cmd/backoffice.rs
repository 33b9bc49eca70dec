//! `gslctl backoffice ...`: operators work the back-office queue (requests
//! for carrier operations with no public API). Takes the operator
//! credential: `--token`, or `GSL_OPERATOR_TOKEN` when `--token` is not given.

use crate::EXIT_OK;
use crate::authed;
use crate::output::{self, Format};
use clap::Subcommand;
use gsl_proto::{convert, v1};
use serde_json::{Value, json};
use tonic::transport::Channel;

#[derive(Debug, Subcommand)]
pub enum BackOfficeCmd {
    /// Open requests (oldest first).
    List {
        #[arg(long)]
        carrier: Option<String>,
        #[arg(long)]
        tenant: Option<String>,
        /// Only requests at least this many seconds old.
        #[arg(long, default_value_t = 0)]
        older_than_secs: u64,
        /// Include completed and rejected requests.
        #[arg(long)]
        all: bool,
    },
    /// Show one request.
    Get { id: String },
    /// Take a request.
    Claim {
        id: String,
        #[arg(long)]
        operator: String,
    },
    /// Sent to the carrier, with the carrier's ticket.
    Submitted {
        id: String,
        #[arg(long, default_value = "")]
        ticket: String,
    },
    /// The carrier accepted it (optionally: when it takes effect, RFC 3339).
    Accepted {
        id: String,
        #[arg(long)]
        effective: Option<String>,
    },
    /// Done at the carrier: the item succeeds.
    Complete { id: String },
    /// Refused at the carrier: the item fails with the reason.
    Reject {
        id: String,
        #[arg(long)]
        reason: String,
    },
}

/// `BACK_OFFICE_STATE_OPEN` -> `open`.
fn state(s: i32) -> &'static str {
    match v1::BackOfficeState::try_from(s) {
        Ok(v1::BackOfficeState::Open) => "open",
        Ok(v1::BackOfficeState::Claimed) => "claimed",
        Ok(v1::BackOfficeState::Submitted) => "submitted",
        Ok(v1::BackOfficeState::Accepted) => "accepted",
        Ok(v1::BackOfficeState::Completed) => "completed",
        Ok(v1::BackOfficeState::Rejected) => "rejected",
        _ => "unspecified",
    }
}

pub fn request_json(r: &v1::BackOfficeRequest) -> Value {
    let ts = |t: Option<&_>| {
        t.and_then(convert::from_timestamp)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default()
    };
    json!({
        "id": r.id,
        "carrier": convert::carrier_from_wire(r.carrier).map(|c| c.as_str()).unwrap_or(""),
        "tenant": r.tenant,
        "work_order_id": r.work_order_id,
        "card": r.card,
        "batch_no": r.batch_no,
        "operation": r.operation.as_ref().and_then(convert::operation_kind).map(|k| k.as_str()).unwrap_or(""),
        "kind": if r.kind == v1::BackOfficeKind::Verify as i32 { "verify" } else { "no_api" },
        "state": state(r.state),
        "instructions": r.instructions,
        "claimed_by": r.claimed_by,
        "carrier_ticket": r.carrier_ticket,
        "effective_at": ts(r.effective_at.as_ref()),
        "reason": r.reason,
        "created_at": ts(r.created_at.as_ref()),
        "sla_deadline": ts(r.sla_deadline.as_ref()),
    })
}

/// Requests as a table or JSON: a list is always a JSON array (even of
/// one), a single request an object.
fn show(format: Format, reqs: &[v1::BackOfficeRequest], list: bool) {
    match format {
        Format::Json => {
            let v: Vec<Value> = reqs.iter().map(request_json).collect();
            let out = if !list && reqs.len() == 1 {
                v[0].clone()
            } else {
                Value::Array(v)
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&out).expect("JSON values serialise")
            );
        }
        Format::Table => {
            let rows: Vec<Vec<String>> = reqs
                .iter()
                .map(|r| {
                    let j = request_json(r);
                    ["id", "operation", "state", "sla_deadline", "instructions"]
                        .iter()
                        .map(|k| {
                            j[k].as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| j[k].to_string())
                        })
                        .collect()
                })
                .collect();
            print!(
                "{}",
                output::table(&["ID", "OPERATION", "STATE", "SLA", "WHAT TO DO"], &rows)
            );
        }
    }
}

pub async fn run(
    ch: Channel,
    token: &str,
    format: Format,
    cmd: BackOfficeCmd,
) -> Result<i32, tonic::Status> {
    let tok = token;
    let mut c = v1::back_office_client::BackOfficeClient::new(ch);
    let one = match cmd {
        BackOfficeCmd::List {
            carrier,
            tenant,
            older_than_secs,
            all,
        } => {
            let carrier = match carrier.as_deref().map(str::parse::<gsl_domain::Carrier>) {
                None => 0,
                Some(Ok(c)) => convert::carrier_to_wire(c) as i32,
                Some(Err(e)) => return Err(tonic::Status::invalid_argument(e.to_string())),
            };
            let r = c
                .list(authed(
                    tok,
                    v1::ListBackOfficeRequest {
                        carrier,
                        tenant: tenant.unwrap_or_default(),
                        older_than_secs,
                        include_closed: all,
                        limit: 0,
                    },
                ))
                .await?
                .into_inner();
            show(format, &r.requests, true);
            return Ok(EXIT_OK);
        }
        BackOfficeCmd::Get { id } => c.get(authed(tok, v1::BackOfficeRef { id })).await?,
        BackOfficeCmd::Claim { id, operator } => {
            c.claim(authed(tok, v1::ClaimBackOfficeRequest { id, operator }))
                .await?
        }
        BackOfficeCmd::Submitted { id, ticket } => {
            c.mark_submitted(authed(
                tok,
                v1::MarkSubmittedRequest {
                    id,
                    carrier_ticket: ticket,
                },
            ))
            .await?
        }
        BackOfficeCmd::Accepted { id, effective } => {
            let effective_at = match effective {
                None => None,
                Some(t) => Some(convert::timestamp(
                    chrono::DateTime::parse_from_rfc3339(&t)
                        .map_err(|e| {
                            tonic::Status::invalid_argument(format!("--effective {t:?}: {e}"))
                        })?
                        .with_timezone(&chrono::Utc),
                )),
            };
            c.mark_accepted(authed(tok, v1::MarkAcceptedRequest { id, effective_at }))
                .await?
        }
        BackOfficeCmd::Complete { id } => c.complete(authed(tok, v1::BackOfficeRef { id })).await?,
        BackOfficeCmd::Reject { id, reason } => {
            c.reject(authed(tok, v1::RejectBackOfficeRequest { id, reason }))
                .await?
        }
    };
    show(format, &[one.into_inner()], false);
    Ok(EXIT_OK)
}

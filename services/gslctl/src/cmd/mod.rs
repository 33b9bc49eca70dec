//! One file per command group: [`submit`], [`orders`] (get, list, items,
//! history, review, watch), [`cards`] (import, seeding), [`cardlist`] (the
//! card list and detail), [`usage`] (daily usage), [`push`] (push addresses)
//! and [`backoffice`]. Each command gets
//! a [`Ctx`] (output format, the credential of its role, clients) and
//! returns its exit code.

pub mod backoffice;
pub mod cardlist;
pub mod cards;
pub mod orders;
pub mod push;
pub mod submit;
pub mod usage;

use crate::batch::RowProblem;
use crate::output::{self, Format};
use gsl_proto::v1;
use serde_json::{Value, json};
use tonic::transport::Channel;

pub type OrdersClient = v1::work_orders_client::WorkOrdersClient<Channel>;
pub type RegistryClient = v1::registry_client::RegistryClient<Channel>;

/// What a command needs: how to print, the credential, the gateway.
pub struct Ctx {
    pub format: Format,
    pub token: String,
    pub channel: Channel,
    pub orders: OrdersClient,
    pub registry: RegistryClient,
}

/// An exit code, or the gateway's refusal.
pub type Outcome = Result<i32, tonic::Status>;

pub fn say(format: Format, table: impl FnOnce() -> String, json_value: impl FnOnce() -> Value) {
    match format {
        Format::Table => print!("{}", table()),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json_value()).expect("JSON values serialise")
        ),
    }
}

pub fn problems_out(format: Format, problems: &[RowProblem]) {
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

/// Refused cards as JSON: `[{card, code, message}]`.
pub fn refused_json(refused: &[v1::RefusedItem]) -> Value {
    Value::Array(
        refused
            .iter()
            .map(|f| {
                json!({
                    "card": f.card,
                    "code": f.problem.as_ref().map(|p| p.code.clone()).unwrap_or_default(),
                    "message": f.problem.as_ref().map(|p| p.message.clone()).unwrap_or_default(),
                })
            })
            .collect(),
    )
}

/// Refused cards as lines: `<card>: <what>: <why>`.
pub fn refused_lines(refused: &[v1::RefusedItem], what: &str) -> String {
    refused
        .iter()
        .map(|f| {
            let why = f.problem.as_ref().map(|p| p.message.as_str()).unwrap_or("");
            format!("{}: {what}: {why}\n", f.card)
        })
        .collect()
}

//! `gslctl push ...`: the tenant's push addresses (docs/push.md): create
//! (the secret is printed once), list, test, enable / disable, change,
//! rotate the secret, delete, and failed pushes: list, resend.

use super::{Outcome, say};
use crate::authed;
use crate::output::Format;
use crate::{EXIT_FAILED, EXIT_ITEMS_FAILED, EXIT_OK};
use clap::Subcommand;
use gsl_proto::{convert, v1};
use serde_json::json;
use std::path::PathBuf;
use tonic::transport::Channel;

#[derive(Debug, Subcommand)]
pub enum PushCmd {
    /// Register an address: https URL, the server certificate to trust (PEM
    /// file; default the system's roots), the events it gets (default all).
    Create {
        url: String,
        #[arg(long)]
        ca: Option<PathBuf>,
        /// Comma-separated: order.finished, item.failed, item.sla_breached,
        /// backoffice.waiting, backoffice.completed.
        #[arg(long, value_delimiter = ',')]
        events: Vec<String>,
        /// Deliveries per second (default 50).
        #[arg(long, default_value_t = 0)]
        rate: u32,
        /// Deliveries at once (default 10).
        #[arg(long, default_value_t = 0)]
        concurrency: u32,
    },
    /// The tenant's addresses.
    List,
    /// Send a signed `push.test` event now.
    Test {
        id: String,
    },
    Enable {
        id: String,
    },
    Disable {
        id: String,
    },
    /// Change an address's URL, certificate, events, rate or concurrency.
    Update {
        id: String,
        #[arg(long)]
        url: Option<String>,
        #[arg(long)]
        ca: Option<PathBuf>,
        #[arg(long, value_delimiter = ',')]
        events: Option<Vec<String>>,
        #[arg(long)]
        rate: Option<u32>,
        #[arg(long)]
        concurrency: Option<u32>,
    },
    /// A new secret (printed once); the old one also signs for a day.
    Rotate {
        id: String,
    },
    Delete {
        id: String,
    },
    /// Pushes whose retries ran out (last 14 days).
    Failed {
        #[arg(long, default_value = "")]
        address: String,
        /// RFC 3339; default 14 days back.
        #[arg(long)]
        since: Option<String>,
        /// Also pushes still being retried after their 4th failed attempt.
        #[arg(long)]
        failing: bool,
    },
    /// Send failed pushes again: one (`--webhook-id`) or all since a time.
    Resend {
        address: String,
        #[arg(long, default_value = "")]
        webhook_id: String,
        #[arg(long)]
        since: Option<String>,
    },
}

fn time(s: &Option<String>) -> Result<Option<prost_types::Timestamp>, String> {
    s.as_deref()
        .map(|s| {
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| convert::timestamp(t.with_timezone(&chrono::Utc)))
                .map_err(|_| format!("{s:?}: a time (RFC 3339)"))
        })
        .transpose()
}

fn pem(p: &Option<PathBuf>) -> Result<Option<String>, String> {
    p.as_ref()
        .map(|p| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display())))
        .transpose()
}

/// An address as JSON (never its secret).
fn address_json(a: &v1::PushAddress) -> serde_json::Value {
    json!({
        "id": a.id, "url": a.url, "enabled": a.enabled,
        "disabled_reason": a.disabled_reason, "events": a.events,
        "rate_per_s": a.rate_per_s, "concurrency": a.concurrency,
    })
}

fn show(format: Format, a: &v1::PushAddress, secret: Option<&str>) {
    say(
        format,
        || {
            let mut s = format!(
                "{}  {}  {}{}\n",
                a.id,
                a.url,
                if a.enabled { "enabled" } else { "disabled" },
                if a.disabled_reason.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", a.disabled_reason)
                }
            );
            if let Some(sec) = secret {
                s.push_str(&format!(
                    "secret: {sec}\n(shown once: keep it where your receiver reads it)\n"
                ));
            }
            s
        },
        || {
            let mut v = address_json(a);
            if let Some(sec) = secret {
                v["secret"] = json!(sec);
            }
            v
        },
    );
}

pub async fn run(channel: Channel, tok: &str, format: Format, cmd: PushCmd) -> Outcome {
    let mut api = v1::push_addresses_client::PushAddressesClient::new(channel);
    let fail = |e: String| {
        eprintln!("gslctl: {e}");
        Ok(EXIT_FAILED)
    };
    match cmd {
        PushCmd::Create {
            url,
            ca,
            events,
            rate,
            concurrency,
        } => {
            let server_ca_pem = match pem(&ca) {
                Ok(p) => p.unwrap_or_default(),
                Err(e) => return fail(e),
            };
            let r = api
                .create(authed(
                    tok,
                    v1::CreatePushAddressRequest {
                        url,
                        server_ca_pem,
                        events,
                        rate_per_s: rate,
                        concurrency,
                    },
                ))
                .await?
                .into_inner();
            show(format, &r.address.unwrap_or_default(), Some(&r.secret));
            Ok(EXIT_OK)
        }
        PushCmd::List => {
            let r = api
                .list(authed(tok, v1::ListPushAddressesRequest {}))
                .await?
                .into_inner();
            say(
                format,
                || {
                    let rows: Vec<Vec<String>> = r
                        .addresses
                        .iter()
                        .map(|a| {
                            vec![
                                a.id.clone(),
                                a.url.clone(),
                                if a.enabled {
                                    "enabled".into()
                                } else {
                                    format!("disabled: {}", a.disabled_reason)
                                },
                                if a.events.is_empty() {
                                    "all".into()
                                } else {
                                    a.events.join(",")
                                },
                            ]
                        })
                        .collect();
                    crate::output::table(&["ID", "URL", "STATE", "EVENTS"], &rows)
                },
                || json!(r.addresses.iter().map(address_json).collect::<Vec<_>>()),
            );
            Ok(EXIT_OK)
        }
        PushCmd::Test { id } => {
            let t = api
                .test(authed(tok, v1::PushAddressRef { id }))
                .await?
                .into_inner();
            say(
                format,
                || {
                    if t.ok {
                        format!("ok: HTTP {} in {:.0} ms\n", t.http_status, t.millis)
                    } else {
                        format!("failed: {} ({:.0} ms)\n", t.error, t.millis)
                    }
                },
                || json!({"ok": t.ok, "http_status": t.http_status, "error": t.error, "millis": t.millis}),
            );
            Ok(if t.ok { EXIT_OK } else { EXIT_ITEMS_FAILED })
        }
        PushCmd::Enable { id } => update(&mut api, tok, format, id, Some(true), None).await,
        PushCmd::Disable { id } => update(&mut api, tok, format, id, Some(false), None).await,
        PushCmd::Update {
            id,
            url,
            ca,
            events,
            rate,
            concurrency,
        } => {
            let server_ca_pem = match pem(&ca) {
                Ok(p) => p,
                Err(e) => return fail(e),
            };
            let u = v1::UpdatePushAddressRequest {
                id: id.clone(),
                set_events: events.is_some(),
                events: events.unwrap_or_default(),
                rate_per_s: rate,
                concurrency,
                url,
                server_ca_pem,
                ..Default::default()
            };
            update(&mut api, tok, format, id, None, Some(u)).await
        }
        PushCmd::Rotate { id } => {
            let r = api
                .rotate_secret(authed(tok, v1::PushAddressRef { id }))
                .await?
                .into_inner();
            show(format, &r.address.unwrap_or_default(), Some(&r.secret));
            Ok(EXIT_OK)
        }
        PushCmd::Delete { id } => {
            let a = api
                .delete(authed(tok, v1::PushAddressRef { id }))
                .await?
                .into_inner();
            show(format, &a, None);
            Ok(EXIT_OK)
        }
        PushCmd::Failed {
            address,
            since,
            failing,
        } => {
            let since = match time(&since) {
                Ok(t) => t,
                Err(e) => return fail(e),
            };
            let r = api
                .list_failed(authed(
                    tok,
                    v1::ListFailedPushesRequest {
                        address_id: address,
                        since,
                        limit: 0,
                        include_failing: failing,
                    },
                ))
                .await?
                .into_inner();
            say(
                format,
                || {
                    let rows: Vec<Vec<String>> = r
                        .failed
                        .iter()
                        .map(|f| {
                            vec![
                                f.webhook_id.clone(),
                                f.kind.clone(),
                                f.address_id.clone(),
                                f.r#type.clone(),
                                f.attempts.to_string(),
                                f.last_error.clone(),
                            ]
                        })
                        .collect();
                    crate::output::table(
                        &["WEBHOOK ID", "ADDRESS", "TYPE", "ATTEMPTS", "LAST ERROR"],
                        &rows,
                    )
                },
                || {
                    json!(r.failed.iter().map(|f| json!({"webhook_id": f.webhook_id, "kind": f.kind, "address_id": f.address_id, "type": f.r#type, "attempts": f.attempts, "last_error": f.last_error, "last_status": f.last_status, "body": f.body})).collect::<Vec<_>>())
                },
            );
            Ok(EXIT_OK)
        }
        PushCmd::Resend {
            address,
            webhook_id,
            since,
        } => {
            let since = match time(&since) {
                Ok(t) => t,
                Err(e) => return fail(e),
            };
            let r = api
                .resend(authed(
                    tok,
                    v1::ResendPushesRequest {
                        address_id: address,
                        webhook_id,
                        since,
                    },
                ))
                .await?
                .into_inner();
            say(
                format,
                || format!("{} pushes sent again\n", r.resent),
                || json!({"resent": r.resent}),
            );
            Ok(EXIT_OK)
        }
    }
}

async fn update(
    api: &mut v1::push_addresses_client::PushAddressesClient<Channel>,
    tok: &str,
    format: Format,
    id: String,
    enabled: Option<bool>,
    u: Option<v1::UpdatePushAddressRequest>,
) -> Outcome {
    let mut u = u.unwrap_or(v1::UpdatePushAddressRequest {
        id,
        ..Default::default()
    });
    if enabled.is_some() {
        u.enabled = enabled;
    }
    let a = api.update(authed(tok, u)).await?.into_inner();
    show(format, &a, None);
    Ok(EXIT_OK)
}

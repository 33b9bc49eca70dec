//! The push API on the bus (`gsl.push.api`, queue group `push-api`): the
//! gateway authenticates a tenant's `PushAddresses` call and relays it with
//! the tenant; this answers it. Only gsl-push reads the address bucket or
//! calls out, so registration checks (the URL resolves to a public
//! address, the certificate parses) and address tests happen here.

use crate::addresses::{Address, EVENT_TYPES};
use crate::deliver::{Attempt, Deliverer};
use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use gsl_domain::ErrorCode;
use gsl_proto::{convert, v1};
use prost::Message as _;
use std::sync::Arc;
use std::time::Duration;

type Reply = Result<v1::push_api_response::Result, (ErrorCode, String)>;

fn bad(msg: impl Into<String>) -> (ErrorCode, String) {
    (ErrorCode::BadParameter, msg.into())
}

fn not_found() -> (ErrorCode, String) {
    (
        ErrorCode::PushAddressNotFound,
        "no push address with this id".into(),
    )
}

fn busy(e: impl std::fmt::Display) -> (ErrorCode, String) {
    (ErrorCode::Busy, format!("the push store: {e}"))
}

/// Most of a URL and of a certificate a registration may carry.
const MAX_URL: usize = 2048;
const MAX_PEM: usize = 16 * 1024;

/// Check what an address would be: URL (and that it resolves to addresses
/// pushes may reach), certificate, events, rate, concurrency.
async fn check(d: &Deliverer, a: &Address) -> Result<(), (ErrorCode, String)> {
    if a.url.len() > MAX_URL {
        return Err(bad(format!("url: at most {MAX_URL} characters")));
    }
    let t = crate::http::target(&a.url, d.cfg.allow_http).map_err(|e| bad(format!("url: {e}")))?;
    crate::http::resolve(&t, &d.cfg.guard)
        .await
        .map_err(|e| bad(format!("url: {e}")))?;
    if a.ca_pem.len() > MAX_PEM {
        return Err(bad(format!("server_ca_pem: at most {MAX_PEM} bytes")));
    }
    if t.https && !a.ca_pem.trim().is_empty() {
        crate::http::tls_config(&a.ca_pem).map_err(|e| bad(format!("server_ca_pem: {e}")))?;
    }
    if let Some(e) = a.events.iter().find(|e| !EVENT_TYPES.contains(&e.as_str())) {
        return Err(bad(format!(
            "events: {e:?} is not one of {}",
            EVENT_TYPES.join(", ")
        )));
    }
    if !(1..=10_000).contains(&a.rate) {
        return Err(bad("rate_per_s: 1 to 10,000 (0: the default, 50)"));
    }
    if !(1..=200).contains(&a.concurrency) {
        return Err(bad("concurrency: 1 to 200 (0: the default, 10)"));
    }
    Ok(())
}

fn new_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 8];
    rand::rng().fill_bytes(&mut b);
    format!("pa_{}", hex::encode(b))
}

fn or_default(v: u32, d: u32) -> u32 {
    if v == 0 { d } else { v }
}

/// The pushes of `tenant` (one address or all) noticed as `kind`
/// (`exhausted`, `failing`, or `*` for both) since `since`, oldest first,
/// at most `limit`.
pub async fn failed(
    d: &Deliverer,
    tenant: &str,
    address: &str,
    kind: &str,
    since: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<v1::FailedPush>, String> {
    let stream =
        d.js.get_stream(gsl_bus::names::STREAM_PUSH_NOTICES)
            .await
            .map_err(|e| e.to_string())?;
    let addr = if address.is_empty() { "*" } else { address };
    let consumer = stream
        .create_consumer(pull::Config {
            filter_subject: gsl_bus::names::push_notice_subject(tenant, addr, kind),
            deliver_policy: DeliverPolicy::ByStartTime {
                start_time: time::OffsetDateTime::from_unix_timestamp(since.timestamp())
                    .map_err(|e| e.to_string())?,
            },
            ack_policy: async_nats::jetstream::consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    loop {
        let mut batch = consumer
            .fetch()
            .max_messages(500)
            .expires(Duration::from_millis(300))
            .messages()
            .await
            .map_err(|e| e.to_string())?;
        let mut got = 0;
        while let Some(m) = batch.next().await {
            let m = m.map_err(|e| e.to_string())?;
            got += 1;
            if let Ok(n) = v1::PushNotice::decode(m.payload.as_ref())
                && n.kind != "disabled"
                && let Some(mut p) = n.push
            {
                p.kind = n.kind;
                out.push(p);
                if out.len() >= limit {
                    return Ok(out);
                }
            }
        }
        if got == 0 {
            return Ok(out);
        }
    }
}

/// Store a failed push again as waiting (its webhook-id kept).
async fn resend_one(d: &Deliverer, tenant: &str, p: &v1::FailedPush) -> Result<(), String> {
    let del = v1::PushDelivery {
        webhook_id: p.webhook_id.clone(),
        tenant: tenant.into(),
        address_id: p.address_id.clone(),
        r#type: p.r#type.clone(),
        body: p.body.clone().into_bytes(),
        created_at: Some(convert::timestamp(Utc::now())),
    };
    d.js.publish(
        gsl_bus::names::push_deliver_subject(tenant, &p.address_id),
        del.encode_to_vec().into(),
    )
    .await
    .map_err(|e| e.to_string())?
    .await
    .map_err(|e| e.to_string())?;
    Ok(())
}

async fn answer(d: &Deliverer, req: v1::PushApiRequest) -> Reply {
    use v1::push_api_request::Call;
    use v1::push_api_response::Result as R;
    let tenant = req.tenant.clone();
    if !gsl_bus::names::valid_tenant(&tenant) {
        return Err(bad("tenant"));
    }
    let cfg = &d.cfg;
    let book = &d.addresses;
    let get = |id: &str| book.get(&tenant, id).ok_or_else(not_found);
    match req.call.ok_or_else(|| bad("no call"))? {
        Call::Create(c) => {
            if book.of_tenant(&tenant).len() >= cfg.max_addresses {
                return Err(bad(format!(
                    "at most {} push addresses per tenant",
                    cfg.max_addresses
                )));
            }
            let now = Utc::now();
            let a = Address {
                id: new_id(),
                tenant: tenant.clone(),
                url: c.url.trim().to_owned(),
                ca_pem: c.server_ca_pem,
                events: c.events,
                rate: or_default(c.rate_per_s, cfg.default_rate),
                concurrency: or_default(c.concurrency, cfg.default_concurrency),
                enabled: true,
                disabled_reason: String::new(),
                created_at: now,
                enabled_at: now,
                last_success_at: None,
                secret: crate::sign::new_secret(),
                previous_secret: None,
                previous_until: None,
                version: 1,
            };
            check(d, &a).await?;
            let a = book.create(a).await.map_err(busy)?;
            Ok(R::WithSecret(v1::PushAddressWithSecret {
                address: Some(a.to_wire()),
                secret: a.secret.clone(),
            }))
        }
        Call::List(_) => Ok(R::Addresses(v1::ListPushAddressesResponse {
            addresses: book
                .of_tenant(&tenant)
                .iter()
                .map(|a| a.to_wire())
                .collect(),
        })),
        Call::Update(u) => {
            let cur = get(&u.id)?;
            let mut next = (*cur).clone();
            if let Some(e) = u.enabled {
                if e && !next.enabled {
                    next.enabled_at = Utc::now();
                    next.disabled_reason.clear();
                }
                if !e && next.enabled {
                    next.disabled_reason = "disabled by its tenant".into();
                }
                next.enabled = e;
            }
            if u.set_events {
                next.events = u.events.clone();
            }
            if let Some(r) = u.rate_per_s {
                next.rate = or_default(r, cfg.default_rate);
            }
            if let Some(c) = u.concurrency {
                next.concurrency = or_default(c, cfg.default_concurrency);
            }
            let moved = u.url.is_some() || u.server_ca_pem.is_some();
            if let Some(url) = &u.url {
                next.url = url.trim().to_owned();
            }
            if let Some(pem) = &u.server_ca_pem {
                next.ca_pem = pem.clone();
            }
            if moved {
                next.version += 1;
            }
            check(d, &next).await?;
            let saved = book
                .update(&tenant, &u.id, |a| {
                    *a = Address {
                        secret: a.secret.clone(),
                        previous_secret: a.previous_secret.clone(),
                        previous_until: a.previous_until,
                        last_success_at: a.last_success_at,
                        ..next.clone()
                    };
                    true
                })
                .await
                .map_err(busy)?
                .ok_or_else(not_found)?;
            if moved {
                d.sender.forget(&format!("{}.{}|", tenant, u.id));
            }
            Ok(R::Address(saved.to_wire()))
        }
        Call::Rotate(r) => {
            get(&r.id)?;
            let until =
                Utc::now() + chrono::Duration::from_std(cfg.rotation_overlap).unwrap_or_default();
            let secret = crate::sign::new_secret();
            let saved = book
                .update(&tenant, &r.id, |a| {
                    a.previous_secret = Some(std::mem::replace(&mut a.secret, secret.clone()));
                    a.previous_until = Some(until);
                    true
                })
                .await
                .map_err(busy)?
                .ok_or_else(not_found)?;
            Ok(R::WithSecret(v1::PushAddressWithSecret {
                address: Some(saved.to_wire()),
                secret,
            }))
        }
        Call::Delete(r) => {
            let cur = get(&r.id)?;
            book.delete(&tenant, &r.id).await.map_err(busy)?;
            d.sender.forget(&format!("{}.{}|", tenant, r.id));
            Ok(R::Address(cur.to_wire()))
        }
        Call::Test(r) => {
            let a = get(&r.id)?;
            let id = format!("msg_test_{}", &new_id()[3..]);
            let body = crate::events::test_body(&tenant, &a.id);
            let t0 = std::time::Instant::now();
            let res = d.attempt(&a, &id, &body).await;
            let millis = t0.elapsed().as_secs_f64() * 1000.0;
            Ok(R::Test(match res {
                Attempt::Ok(s) => v1::PushTestResult {
                    ok: true,
                    http_status: u32::from(s),
                    error: String::new(),
                    millis,
                },
                Attempt::Failed { status, error, .. } => v1::PushTestResult {
                    ok: false,
                    http_status: u32::from(status),
                    error,
                    millis,
                },
            }))
        }
        Call::ListFailed(l) => {
            if !l.address_id.is_empty() {
                get(&l.address_id)?;
            }
            let since = window_start(l.since.as_ref())?;
            let limit = match l.limit {
                0 => 1000,
                n => n.min(1000) as usize,
            };
            let kind = if l.include_failing { "*" } else { "exhausted" };
            let failed = failed(d, &tenant, &l.address_id, kind, since, limit)
                .await
                .map_err(busy)?;
            Ok(R::Failed(v1::ListFailedPushesResponse { failed }))
        }
        Call::Resend(r) => {
            get(&r.address_id)?;
            if r.webhook_id.is_empty() && r.since.is_none() {
                return Err(bad("webhook_id, or since (at most 14 days back)"));
            }
            let since = window_start(r.since.as_ref())?;
            let found = failed(d, &tenant, &r.address_id, "exhausted", since, 100_000)
                .await
                .map_err(busy)?;
            let mut resent = 0u32;
            let mut seen = std::collections::HashSet::new();
            for p in found.iter().rev() {
                // The newest failure of each push, once.
                if (!r.webhook_id.is_empty() && p.webhook_id != r.webhook_id)
                    || !seen.insert(p.webhook_id.clone())
                {
                    continue;
                }
                resend_one(d, &tenant, p).await.map_err(busy)?;
                resent += 1;
            }
            if resent == 0 && !r.webhook_id.is_empty() {
                return Err((
                    ErrorCode::PushAddressNotFound,
                    "no failed push with this webhook-id in the last 14 days".into(),
                ));
            }
            Ok(R::Resent(v1::ResendPushesResponse { resent }))
        }
    }
}

/// `since`, or 14 days ago; never further back than 14 days.
fn window_start(
    since: Option<&prost_types::Timestamp>,
) -> Result<DateTime<Utc>, (ErrorCode, String)> {
    let floor = Utc::now() - chrono::Duration::days(14);
    match since {
        None => Ok(floor),
        Some(t) => {
            let t = convert::from_timestamp(t).ok_or_else(|| bad("since: not a time"))?;
            if t < floor - chrono::Duration::minutes(5) {
                return Err(bad("since: at most 14 days back"));
            }
            Ok(t.max(floor))
        }
    }
}

/// Subscribe to the push API (before the service says it is up, so no
/// call finds nobody listening).
pub async fn subscribe(
    client: &async_nats::Client,
) -> Result<async_nats::Subscriber, async_nats::SubscribeError> {
    client
        .queue_subscribe(gsl_bus::names::PUSH_API_SUBJECT, "push-api".into())
        .await
}

/// Wait until a call on the API subject reaches a responder (ours: an
/// empty call, answered "no call").
pub async fn wait_until_routed(client: &async_nats::Client) -> Result<(), String> {
    let empty = v1::PushApiRequest::default().encode_to_vec();
    let mut last = String::new();
    for _ in 0..100 {
        match client
            .request(gsl_bus::names::PUSH_API_SUBJECT, empty.clone().into())
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!(
        "the push API is not routed to this process: {last}"
    ))
}

/// Answer calls until `stop`.
pub async fn run(
    client: async_nats::Client,
    mut sub: async_nats::Subscriber,
    d: Arc<Deliverer>,
    stop: gsl_telemetry::shutdown::Listener,
) {
    let stopped = stop.wait();
    tokio::pin!(stopped);
    loop {
        let m = tokio::select! {
            _ = &mut stopped => return,
            m = sub.next() => match m { Some(m) => m, None => return },
        };
        let (client, d) = (client.clone(), d.clone());
        tokio::spawn(async move {
            let Some(reply) = m.reply.clone() else {
                return;
            };
            let resp = match v1::PushApiRequest::decode(m.payload.as_ref()) {
                Ok(req) => match answer(&d, req).await {
                    Ok(r) => v1::PushApiResponse {
                        problem: None,
                        result: Some(r),
                    },
                    Err((code, msg)) => v1::PushApiResponse {
                        problem: Some(convert::problem(code, msg)),
                        result: None,
                    },
                },
                Err(_) => v1::PushApiResponse {
                    problem: Some(convert::problem(
                        ErrorCode::BadParameter,
                        "unreadable push API request",
                    )),
                    result: None,
                },
            };
            let _ = client.publish(reply, resp.encode_to_vec().into()).await;
        });
    }
}

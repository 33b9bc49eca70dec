//! The tri-net platform: one card (container id) with China Mobile, China
//! Telecom and China Unicom profiles. No public API exists to copy; this is a
//! plain JSON REST style (documented in docs/carrier-sim.md).
//!
//! * `Authorization: Bearer <api key>`.
//! * `POST /trinet/api/v1/cards/{cid}/lifecycle` `{"action": "activate"|"stop"|
//!   "resume"|"close", "requestId"}`: applied to the active profile.
//! * `POST .../cards/{cid}/switch-network` `{"target": "cmcc"|"ct"|"cu", "requestId"}`,
//!   `POST .../cards/{cid}/switch-policy` `{"policyId", "requestId"}`: cards
//!   without the SDK switch at most once every 5 minutes.
//! * `POST .../batches/{batchNo}/directional`: directional config.
//! * `GET .../cards/{cid}`, `GET .../tickets/{ticket}`, `GET .../tickets?requestId=`.
//! * Card sync (`trinet.md`, "Queries for card sync"): the card object
//!   (`cid, status, stopReason, activeCarrier, realNamed, imei, updatedAt`),
//!   `GET .../cards?modifiedSince=&limit=&cursor=` ascending by
//!   (`updatedAt`, `cid`) with a keyset cursor, every card without
//!   `modifiedSince`, `SINCE_TOO_OLD` past 30 days.
//! * `GET/POST .../policies`, `PUT .../policies/{id}`: at most 50; a policy
//!   that is or was in use cannot have its content changed.
//! * Answers 202 `{"ticket"}`; errors `{"code","message"}` with 400
//!   `BAD_REQUEST`, 401 `UNAUTHORIZED`, 403 `NOT_OFFERED`, 404 `NOT_FOUND`,
//!   409 `ILLEGAL_STATE` / `SWITCH_TOO_SOON` / `POLICY_NOT_USABLE` /
//!   `POLICY_IN_USE` / `TOO_MANY_POLICIES`, 429 `RATE_LIMITED` with
//!   `Retry-After`, 503 `BUSY`.

use crate::config::ApiClass;
use crate::engine::{Change, DirChange, Engine, MAX_POLICIES, OrderState, Policy, Refusal};
use crate::gate::Gate;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use gsl_domain::carrier::Carrier;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;

fn error(status: u16, code: &str, msg: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        axum::Json(json!({"code": code, "message": msg})),
    )
        .into_response()
}

/// How the tri-net platform answers at the gate.
pub const STYLE: crate::gate::Style = crate::gate::Style {
    classify: |parts, _| classify(parts),
    busy: |_| busy(),
    over_limit: |_, wait| over_limit(wait),
    authenticate: |e, parts, _| authenticate(e, parts),
};

pub fn busy() -> Response {
    error(503, "BUSY", "platform busy")
}

pub fn over_limit(wait: Duration) -> Response {
    let mut r = error(429, "RATE_LIMITED", "rate limit exceeded");
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    r.headers_mut().insert(
        "Retry-After",
        secs.to_string().parse().expect("digits are a valid header"),
    );
    r
}

pub fn classify(parts: &http::request::Parts) -> ApiClass {
    match parts.method {
        http::Method::GET if parts.uri.path().ends_with("/policies") => ApiClass::List,
        http::Method::GET => ApiClass::Query,
        // A read with a body (`trinet.md`: the query budget).
        http::Method::POST if parts.uri.path().ends_with("/usage/query") => ApiClass::Query,
        _ => ApiClass::Change,
    }
}

pub fn authenticate(e: &Engine, parts: &http::request::Parts) -> Result<(), Response> {
    let expect = format!("Bearer {}", e.config.credentials.trinet_api_key);
    match parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
    {
        Some(h) if h == expect => Ok(()),
        _ => Err(error(401, "UNAUTHORIZED", "invalid api key")),
    }
}

fn refusal(r: &Refusal) -> Response {
    let m = r.to_string();
    match r {
        Refusal::UnknownCard | Refusal::BatchUnknown => error(404, "NOT_FOUND", &m),
        Refusal::BadParam(_) | Refusal::TxnConflict | Refusal::Directional(_) => {
            error(400, "BAD_REQUEST", &m)
        }
        Refusal::NotOffered
        | Refusal::RealNameRequired
        | Refusal::NotPooled
        | Refusal::RegionForbidden => error(403, "NOT_OFFERED", &m),
        Refusal::SwitchTooSoon => error(409, "SWITCH_TOO_SOON", &m),
        Refusal::PolicyUnusable(_) => error(409, "POLICY_NOT_USABLE", &m),
        _ => error(409, "ILLEGAL_STATE", &m),
    }
}

fn submit(e: &Engine, card: &str, txn: &str, change: Change) -> Response {
    if txn.is_empty() {
        return error(400, "BAD_REQUEST", "requestId is required");
    }
    match e.submit(Carrier::Trinet, card, txn, change) {
        Ok(r) => (
            StatusCode::ACCEPTED,
            axum::Json(json!({"ticket": r.order_no, "replayed": r.replayed})),
        )
            .into_response(),
        Err(r) => refusal(&r),
    }
}

#[derive(Deserialize)]
struct Lifecycle {
    action: String,
    #[serde(rename = "requestId", default)]
    request_id: String,
}

async fn lifecycle(State(g): State<Gate>, Path(cid): Path<String>, body: Bytes) -> Response {
    let Ok(r) = serde_json::from_slice::<Lifecycle>(&body) else {
        return error(400, "BAD_REQUEST", "expected {action, requestId}");
    };
    let change = match r.action.as_str() {
        "activate" => Change::Activate,
        "stop" => Change::Stop,
        "resume" => Change::Resume,
        "close" => Change::Close,
        _ => {
            return error(
                400,
                "BAD_REQUEST",
                "action must be activate, stop, resume or close",
            );
        }
    };
    submit(&g.engine, &cid, &r.request_id, change)
}

#[derive(Deserialize)]
struct Switch {
    #[serde(default)]
    target: String,
    #[serde(rename = "policyId", default)]
    policy_id: String,
    #[serde(rename = "requestId", default)]
    request_id: String,
}

async fn switch_network(State(g): State<Gate>, Path(cid): Path<String>, body: Bytes) -> Response {
    let Ok(r) = serde_json::from_slice::<Switch>(&body) else {
        return error(400, "BAD_REQUEST", "expected {target, requestId}");
    };
    let Ok(target) = r.target.parse::<Carrier>() else {
        return error(400, "BAD_REQUEST", "target must be cmcc, ct or cu");
    };
    submit(
        &g.engine,
        &cid,
        &r.request_id,
        Change::SwitchNetwork { target },
    )
}

async fn switch_policy(State(g): State<Gate>, Path(cid): Path<String>, body: Bytes) -> Response {
    let Ok(r) = serde_json::from_slice::<Switch>(&body) else {
        return error(400, "BAD_REQUEST", "expected {policyId, requestId}");
    };
    submit(
        &g.engine,
        &cid,
        &r.request_id,
        Change::SwitchPolicy {
            policy: r.policy_id,
        },
    )
}

async fn directional(State(g): State<Gate>, Path(batch): Path<String>, body: Bytes) -> Response {
    #[derive(Deserialize)]
    struct Req {
        action: String,
        #[serde(default)]
        entries: Vec<String>,
        #[serde(rename = "entryId", default)]
        entry_id: String,
        #[serde(default)]
        entry: String,
        #[serde(rename = "entryIds", default)]
        entry_ids: Vec<String>,
        #[serde(rename = "requestId", default)]
        request_id: String,
    }
    let Ok(r) = serde_json::from_slice::<Req>(&body) else {
        return error(400, "BAD_REQUEST", "bad directional request");
    };
    let plan = match r.action.as_str() {
        "add" => DirChange::Add { entries: r.entries },
        "modify" => DirChange::Modify {
            id: r.entry_id,
            entry: r.entry,
        },
        "delete" => DirChange::Delete { ids: r.entry_ids },
        _ => return error(400, "BAD_REQUEST", "action must be add, modify or delete"),
    };
    submit(
        &g.engine,
        &format!("batch:{batch}"),
        &r.request_id,
        Change::Directional { batch, plan },
    )
}

/// The card object of `trinet.md` (plus the simulator's own `version`,
/// `profiles`, `policy`).
fn card_object(c: &crate::inventory::CardRecord) -> serde_json::Value {
    json!({
        "cid": c.id,
        "status": c.status.code(),
        "stopReason": if c.status == gsl_domain::card::SimStatus::Stopped { c.stop_reason.code() } else { -1 },
        "activeCarrier": c.active_profile.map(|p| p.as_str()),
        "realNamed": c.real_named,
        "imei": c.imei,
        "updatedAt": c.changed_at().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "version": c.trinet_version,
        "activeProfile": c.active_profile,
        "profiles": c.profiles,
        "policy": c.policy,
    })
}

async fn card(State(g): State<Gate>, Path(cid): Path<String>) -> Response {
    match g.engine.card(Carrier::Trinet, &cid) {
        None => error(404, "CARD_NOT_FOUND", "unknown card"),
        Some(c) => axum::Json(card_object(&c)).into_response(),
    }
}

/// The list's keyset cursor: `g<serial>` through the cards nothing changed
/// (all at `GENERATED_AT`, ids in serial order), then `k<micros>.<cid>`
/// through the changed ones.
/// `POST /usage/query`: a calendar month's usage (CST), to yesterday 24:00.
async fn usage_query(State(g): State<Gate>, body: Bytes) -> Response {
    use chrono::Datelike;
    let e = &g.engine;
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return error(400, "BAD_PARAMETER", "body must be JSON");
    };
    let cids: Vec<String> = v["cids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if cids.is_empty() || cids.len() > 100 {
        return error(400, "BAD_PARAMETER", "cids: 1 to 100");
    }
    let month = v["month"].as_str().unwrap_or("");
    let Ok(first) = chrono::NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d") else {
        return error(400, "BAD_PARAMETER", "month must be YYYY-MM");
    };
    let now = e.now();
    let today = gsl_domain::calendar::cst_date(now);
    let this = gsl_domain::calendar::calendar_month(today).0;
    let back = (this.year() - first.year()) * 12 + this.month() as i32 - first.month() as i32;
    if !(0..6).contains(&back) {
        return error(
            400,
            "BAD_PARAMETER",
            "month: this one or one of the 5 before",
        );
    }
    let (_, last) = gsl_domain::calendar::calendar_month(first);
    let as_of = gsl_domain::calendar::cst_midnight(last.succ_opt().expect("a next day").min(today));
    let mut usage = Vec::new();
    let mut unknown = Vec::new();
    for cid in cids {
        if e.card(Carrier::Trinet, &cid).is_some() {
            let bytes = (e.used_mb(&cid, first, as_of) * 1_048_576.0).round() as u64;
            usage.push(json!({"cid": cid, "usedBytes": bytes}));
        } else {
            unknown.push(cid);
        }
    }
    axum::Json(json!({
        "month": month,
        "asOf": as_of.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "usage": usage,
        "unknown": unknown,
    }))
    .into_response()
}

async fn list_cards(State(g): State<Gate>, Query(q): Query<HashMap<String, String>>) -> Response {
    let e = &g.engine;
    let limit: usize = match q.get("limit").map(|s| s.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        _ => return error(400, "BAD_PARAMETER", "limit must be 1 to 100"),
    };
    let since = match q.get("modifiedSince") {
        None => None,
        Some(s) => match chrono::DateTime::parse_from_rfc3339(s) {
            Ok(t) => Some(t.with_timezone(&chrono::Utc)),
            Err(_) => return error(400, "BAD_PARAMETER", "modifiedSince must be ISO 8601 UTC"),
        },
    };
    if since.is_some_and(|t| t < e.now() - chrono::Duration::days(30)) {
        return error(
            400,
            "SINCE_TOO_OLD",
            "modifiedSince is older than 30 days: do a full sweep",
        );
    }
    let cursor = q.get("cursor").map(String::as_str).unwrap_or("");
    let generated = crate::inventory::generated_at();
    let mut cards = Vec::new();
    let mut after: Option<(chrono::DateTime<chrono::Utc>, String)> = None;
    let mut next_serial = None;
    if let Some(k) = cursor.strip_prefix('k') {
        let Some((micros, cid)) = k.split_once('.') else {
            return error(400, "BAD_PARAMETER", "bad cursor");
        };
        let Some(t) = micros
            .parse::<i64>()
            .ok()
            .and_then(chrono::DateTime::from_timestamp_micros)
        else {
            return error(400, "BAD_PARAMETER", "bad cursor");
        };
        after = Some((t, cid.to_owned()));
    } else if since.is_none_or(|t| t <= generated) {
        let from = match cursor.strip_prefix('g') {
            Some(n) => match n.parse::<u64>() {
                Ok(n) => n,
                Err(_) => return error(400, "BAD_PARAMETER", "bad cursor"),
            },
            None if cursor.is_empty() => 0,
            None => return error(400, "BAD_PARAMETER", "bad cursor"),
        };
        let (page, next) = e.unstamped_from(Carrier::Trinet, from, limit);
        cards = page;
        next_serial = next;
    }
    if next_serial.is_none() && cards.len() < limit {
        let since = since
            .unwrap_or(generated)
            .max(generated + chrono::Duration::microseconds(1));
        let room = limit - cards.len();
        let more = e.changed_since(
            Carrier::Trinet,
            since,
            after.as_ref().map(|(t, id)| (*t, id.as_str())),
            room + 1,
        );
        let has_more = more.len() > room;
        cards.extend(more.into_iter().take(room));
        let next = has_more.then(|| {
            let last = cards.last().expect("a page before more");
            format!("k{}.{}", last.changed_at().timestamp_micros(), last.id)
        });
        return axum::Json(json!({
            "cards": cards.iter().map(card_object).collect::<Vec<_>>(),
            "nextCursor": next,
        }))
        .into_response();
    }
    axum::Json(json!({
        "cards": cards.iter().map(card_object).collect::<Vec<_>>(),
        "nextCursor": next_serial.map(|n| format!("g{n}")).or_else(|| Some("k0.".into())),
    }))
    .into_response()
}

fn show(o: crate::engine::Order) -> Response {
    axum::Json(json!({
        "ticket": o.order_no,
        "requestId": o.txn,
        "cid": o.card,
        "state": match o.state { OrderState::Pending => "pending", OrderState::Succeeded => "done", OrderState::Failed => "failed" },
    }))
    .into_response()
}

async fn ticket(State(g): State<Gate>, Path(t): Path<String>) -> Response {
    match g.engine.order(Carrier::Trinet, &t) {
        Some(o) => show(o),
        None => error(404, "NOT_FOUND", "unknown ticket"),
    }
}

async fn find_ticket(State(g): State<Gate>, Query(q): Query<HashMap<String, String>>) -> Response {
    match q
        .get("requestId")
        .and_then(|r| g.engine.order_by_txn(Carrier::Trinet, r))
    {
        Some(o) => show(o),
        None => error(404, "NOT_FOUND", "unknown ticket"),
    }
}

async fn list_policies(State(g): State<Gate>) -> Response {
    let p = g
        .engine
        .platform(Carrier::Trinet)
        .world
        .policies
        .lock()
        .expect("policies lock");
    axum::Json(json!({"policies": p.values().collect::<Vec<_>>()})).into_response()
}

async fn create_policy(State(g): State<Gate>, body: Bytes) -> Response {
    let Ok(mut pol) = serde_json::from_slice::<Policy>(&body) else {
        return error(400, "BAD_REQUEST", "expected {id, version, enabled, order}");
    };
    pol.used = false;
    let mut p = g
        .engine
        .platform(Carrier::Trinet)
        .world
        .policies
        .lock()
        .expect("policies lock");
    if p.contains_key(&pol.id) {
        return error(409, "POLICY_EXISTS", "policy id exists");
    }
    if p.len() >= MAX_POLICIES {
        return error(409, "TOO_MANY_POLICIES", "at most 50 policies per customer");
    }
    p.insert(pol.id.clone(), pol);
    StatusCode::CREATED.into_response()
}

async fn update_policy(State(g): State<Gate>, Path(id): Path<String>, body: Bytes) -> Response {
    let Ok(new) = serde_json::from_slice::<Policy>(&body) else {
        return error(400, "BAD_REQUEST", "expected {id, version, enabled, order}");
    };
    let mut p = g
        .engine
        .platform(Carrier::Trinet)
        .world
        .policies
        .lock()
        .expect("policies lock");
    let Some(old) = p.get_mut(&id) else {
        return error(404, "NOT_FOUND", "unknown policy");
    };
    if old.used && (old.order != new.order || old.version != new.version) {
        return error(
            409,
            "POLICY_IN_USE",
            "a policy that is or was in use cannot have its content changed",
        );
    }
    old.enabled = new.enabled;
    old.order = new.order;
    old.version = new.version;
    StatusCode::NO_CONTENT.into_response()
}

/// Routes under `/trinet`.
pub fn router(g: Gate) -> Router {
    Router::new()
        .route("/api/v1/cards", get(list_cards))
        .route("/api/v1/usage/query", post(usage_query))
        .route("/api/v1/cards/{cid}", get(card))
        .route("/api/v1/cards/{cid}/lifecycle", post(lifecycle))
        .route("/api/v1/cards/{cid}/switch-network", post(switch_network))
        .route("/api/v1/cards/{cid}/switch-policy", post(switch_policy))
        .route("/api/v1/batches/{batch}/directional", post(directional))
        .route("/api/v1/tickets/{ticket}", get(ticket))
        .route("/api/v1/tickets", get(find_ticket))
        .route("/api/v1/policies", get(list_policies).post(create_policy))
        .route("/api/v1/policies/{id}", put(update_policy))
        .layer(axum::middleware::from_fn_with_state(
            g.clone(),
            crate::gate::gate,
        ))
        .with_state(g)
}

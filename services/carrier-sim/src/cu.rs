//! China Unicom, Jasper / Cisco Control Center REST, as
//! `../shared/carriers/cu.md` gives it.
//!
//! * HTTP Basic (`user:apiKey`). No credentials: 401 with `WWW-Authenticate:
//!   Basic realm="Jasper"` and `{"errorMessage":"Full authentication is
//!   required to access this resource"}`; wrong ones: 401
//!   `{"errorMessage":"Invalid credentials","errorCode":"10000001"}`.
//! * `GET /cu/rws/api/v1/devices/{iccid}`: `iccid, imsi, msisdn, imei, status,
//!   ratePlan, communicationPlan, dateActivated, dateUpdated`. Status strings
//!   `TEST_READY`, `INVENTORY`, `ACTIVATION_READY`, `ACTIVATED`,
//!   `DEACTIVATED`, `RETIRED`.
//! * `PUT /cu/rws/api/v1/devices/{iccid}` (Edit Device Details) with
//!   `status`, `communicationPlan` or `ratePlan`: **synchronous**, the change
//!   is made before `200 {"iccid":..}`. No request id, nothing to poll, no
//!   idempotency. A `communicationPlan` / `ratePlan` named in the simulator's
//!   plan tables (`cu_speed_plans`, `cu_cap_plans`: account data, empty by
//!   default) sets the card's speed or usage cap; any other plan name is
//!   recorded and changes nothing else. A future `effectiveDate` is not
//!   simulated (400).
//! * Card sync (`cu.md`, "Queries for card sync"): `GET
//!   /cu/rws/api/v1/devices/{iccid}/ctdUsages` (status, IMEI, plans and
//!   `ctdDataUsage`: bytes since the billing cycle began on the 27th, up to
//!   now, from `engine::usage`) and `GET /cu/rws/api/v1/devices?modifiedSince=`
//!   (`pageSize` up to 50, `pageNumber` from 1; oldest change first;
//!   `iccid, status, ratePlan, communicationPlan` only; `lastPage`).
//! * Over the 5 calls/s policy: the status in
//!   [`crate::config::Undocumented::cu_over_limit_status`] (Jasper documents
//!   the policy, not the answer) with `Retry-After`.
//! * Error codes other than `10000001` are labelled simulator settings
//!   (Cisco's per-API lists are not in our sources): 400 bad request, 404
//!   unknown device, 409 state does not allow it
//!   ([`crate::config::Undocumented`]).

use crate::config::ApiClass;
use crate::engine::{Change, Engine, Refusal};
use crate::gate::Gate;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use gsl_domain::card::SimStatus;
use gsl_domain::carrier::Carrier;
use serde_json::{Value, json};
use std::time::Duration;

fn error(status: u16, code: &str, msg: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        axum::Json(json!({"errorCode": code, "errorMessage": msg})),
    )
        .into_response()
}

/// How China Unicom answers at the gate.
pub const STYLE: crate::gate::Style = crate::gate::Style {
    classify: |parts, _| classify(parts),
    busy,
    over_limit,
    authenticate: |e, parts, _| authenticate(e, parts),
};

pub fn busy(e: &Engine) -> Response {
    error(
        503,
        &e.config.undocumented.cu_busy,
        "system busy (simulator setting)",
    )
}

pub fn over_limit(e: &Engine, wait: Duration) -> Response {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut r = error(
        e.config.undocumented.cu_over_limit_status,
        &e.config.undocumented.cu_over_limit,
        "rate limit exceeded (simulator setting)",
    );
    r.headers_mut().insert(
        "Retry-After",
        secs.to_string().parse().expect("digits are a valid header"),
    );
    r
}

/// Jasper's policy is 5 calls per second per API user **in all**: every call
/// counts against the one (change) budget.
pub fn classify(_parts: &http::request::Parts) -> ApiClass {
    ApiClass::Change
}

pub fn authenticate(e: &Engine, parts: &http::request::Parts) -> Result<(), Response> {
    let c = &e.config.credentials;
    let expect = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.cu_user, c.cu_api_key))
    );
    match parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
    {
        Some(h) if h == expect => Ok(()),
        None => {
            let mut r = (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"errorMessage": "Full authentication is required to access this resource"})),
            )
                .into_response();
            r.headers_mut().insert(
                "WWW-Authenticate",
                http::HeaderValue::from_static("Basic realm=\"Jasper\""),
            );
            Err(r)
        }
        Some(_) => Err(error(401, "10000001", "Invalid credentials")),
    }
}

fn jasper_status(s: SimStatus) -> &'static str {
    match s {
        SimStatus::NotActivated => "INVENTORY",
        SimStatus::Testable => "TEST_READY",
        SimStatus::Activatable => "ACTIVATION_READY",
        SimStatus::InUse => "ACTIVATED",
        SimStatus::Stopped => "DEACTIVATED",
        SimStatus::Closed => "RETIRED",
    }
}

fn refusal(e: &Engine, r: &Refusal) -> Response {
    let u = &e.config.undocumented;
    match r {
        Refusal::UnknownCard => unknown(e),
        Refusal::BadParam(_) => error(400, &u.cu_bad_request, &r.to_string()),
        _ => error(409, &u.cu_illegal_state, &r.to_string()),
    }
}

fn unknown(e: &Engine) -> Response {
    error(
        404,
        &e.config.undocumented.cu_unknown_device,
        "unknown device",
    )
}

fn bad(e: &Engine, msg: &str) -> Response {
    error(400, &e.config.undocumented.cu_bad_request, msg)
}

fn apply(e: &Engine, card: &str, change: Change) -> Response {
    match e.submit_sync(Carrier::Cu, card, change) {
        Ok(_) => axum::Json(json!({"iccid": card})).into_response(),
        Err(r) => refusal(e, &r),
    }
}

async fn get_device(State(g): State<Gate>, Path(iccid): Path<String>) -> Response {
    match g.engine.card(Carrier::Cu, &iccid) {
        None => unknown(&g.engine),
        Some(c) => axum::Json(json!({
            "iccid": c.id,
            "msisdn": c.msisdn,
            "imsi": c.imsi,
            "imei": c.imei,
            "status": jasper_status(c.status),
            "ratePlan": c.rate_plan,
            "communicationPlan": c.communication_plan,
            "dateActivated": "",
            "dateUpdated": c.last_status_change.map(|t| t.to_rfc3339()).unwrap_or_default(),
        }))
        .into_response(),
    }
}

async fn ctd_usages(State(g): State<Gate>, Path(iccid): Path<String>) -> Response {
    let e = &g.engine;
    match e.card(Carrier::Cu, &iccid) {
        None => unknown(e),
        Some(c) => {
            // Bytes since the billing cycle began (the 27th), up to now.
            let now = e.now();
            let (first, _) = gsl_domain::calendar::billing_cycle(
                gsl_domain::calendar::cst_date(now),
                e.config.rules.cu_cycle_start_day,
            );
            let bytes = (e.used_mb(&c.id, first, now) * 1_048_576.0).round() as u64;
            axum::Json(json!({
                "iccid": c.id,
                "imsi": c.imsi,
                "msisdn": c.msisdn,
                "imei": c.imei,
                "status": jasper_status(c.status),
                "ratePlan": c.rate_plan,
                "communicationPlan": c.communication_plan,
                "ctdDataUsage": bytes,
                "ctdSMSUsage": 0,
                "ctdVoiceUsage": 0,
                "ctdSessionCount": 0,
                "overageLimitReached": false,
                "overageLimitOverride": "DEFAULT",
            }))
            .into_response()
        }
    }
}

/// Cisco's "search devices": devices modified since a time, oldest first.
async fn search_devices(
    State(g): State<Gate>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let e = &g.engine;
    let Some(since) = q
        .get("modifiedSince")
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
    else {
        return bad(e, "modifiedSince is required (ISO 8601)");
    };
    let size: usize = match q.get("pageSize").map(|s| s.parse::<usize>()) {
        None => 50,
        Some(Ok(n)) if (1..=50).contains(&n) => n,
        _ => return bad(e, "pageSize must be 1 to 50"),
    };
    let page: usize = match q.get("pageNumber").map(|s| s.parse::<usize>()) {
        None => 1,
        Some(Ok(n)) if n >= 1 => n,
        _ => return bad(e, "pageNumber must be 1 or more"),
    };
    let skip = (page - 1) * size;
    let cards = e.changed_since(Carrier::Cu, since, None, skip + size + 1);
    let last = cards.len() <= skip + size;
    let devices: Vec<Value> = cards
        .iter()
        .skip(skip)
        .take(size)
        .map(|c| {
            json!({
                "iccid": c.id,
                "status": jasper_status(c.status),
                "ratePlan": c.rate_plan,
                "communicationPlan": c.communication_plan,
            })
        })
        .collect();
    axum::Json(json!({"devices": devices, "pageNumber": page, "lastPage": last})).into_response()
}

async fn put_device(State(g): State<Gate>, Path(iccid): Path<String>, body: Bytes) -> Response {
    let e = &g.engine;
    let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(&body) else {
        return bad(e, "body must be a JSON object");
    };
    let Some(card) = e.card(Carrier::Cu, &iccid) else {
        return unknown(e);
    };
    if m.get("effectiveDate").is_some_and(|v| !v.is_null()) {
        return bad(e, "a future effectiveDate is not simulated");
    }
    if let Some(s) = m.get("status").and_then(Value::as_str) {
        let change = match (s, card.status) {
            ("ACTIVATED", SimStatus::Stopped) => Change::Resume,
            ("ACTIVATED", _) => Change::Activate,
            ("DEACTIVATED", _) => Change::Stop,
            ("RETIRED", _) => Change::Close,
            _ => return bad(e, "unknown status"),
        };
        return apply(e, &iccid, change);
    }
    let plans = &e.config.rules;
    if let Some(plan) = m.get("communicationPlan").and_then(Value::as_str) {
        if let Some(kbps) = plans.cu_speed_plans.get(plan) {
            let r = apply(e, &iccid, Change::Speed { kbps: *kbps });
            if r.status().is_success() {
                e.edit_card(Carrier::Cu, &iccid, |c| {
                    c.communication_plan = plan.to_owned()
                });
            }
            return r;
        }
        e.edit_card(Carrier::Cu, &iccid, |c| {
            c.communication_plan = plan.to_owned()
        });
        return axum::Json(json!({"iccid": iccid})).into_response();
    }
    if let Some(plan) = m.get("ratePlan").and_then(Value::as_str) {
        if let Some(mb) = plans.cu_cap_plans.get(plan) {
            let change = match (*mb, card.threshold_mb) {
                (-1, -1) => None,
                (-1, _) => Some(Change::ThresholdCancel),
                (mb, -1) => Some(Change::ThresholdAdd { mb }),
                (mb, _) => Some(Change::ThresholdModify { mb }),
            };
            let r = match change {
                Some(c) => apply(e, &iccid, c),
                None => axum::Json(json!({"iccid": iccid})).into_response(),
            };
            if r.status().is_success() {
                e.edit_card(Carrier::Cu, &iccid, |c| c.rate_plan = plan.to_owned());
            }
            return r;
        }
        e.edit_card(Carrier::Cu, &iccid, |c| c.rate_plan = plan.to_owned());
        return axum::Json(json!({"iccid": iccid})).into_response();
    }
    bad(e, "at least one field to edit is required")
}

/// Routes under `/cu`.
pub fn router(g: Gate) -> Router {
    Router::new()
        .route(
            "/rws/api/v1/devices/{iccid}",
            get(get_device).put(put_device),
        )
        .route("/rws/api/v1/devices/{iccid}/ctdUsages", get(ctd_usages))
        .route("/rws/api/v1/devices", get(search_devices))
        .layer(axum::middleware::from_fn_with_state(
            g.clone(),
            crate::gate::gate,
        ))
        .with_state(g)
}

//! China Unicom, Jasper / Control Center REST style.
//!
//! * HTTP Basic auth (`user:apiKey`); 401 otherwise.
//! * `GET /cu/rws/api/v1/devices/{iccid}`: the device. States: `INVENTORY`,
//!   `ACTIVATION_READY`, `ACTIVATED`, `DEACTIVATED`, `RETIRED`.
//! * `PUT /cu/rws/api/v1/devices/{iccid}` with one of
//!   `{"status": "ACTIVATED"|"DEACTIVATED"|"RETIRED"}`, `{"speedTier": kbps}`
//!   (0 removes the limit), `{"usageThresholdMb": n}` (-1 cancels). Answers
//!   202 `{"iccid":..,"requestId":..}`: the change completes later.
//! * Simulator extensions (the real API has no idempotency key; unsure):
//!   `X-Request-Id` on a PUT makes a repeat return the original receipt;
//!   `GET /requests/{requestId}` and `GET /requests?externalId=<X-Request-Id>`
//!   show a change's progress; `PUT /batches/{batchNo}/directional` changes
//!   directional config.
//! * Over the limit: HTTP 429 with `Retry-After` (seconds).
//! * Errors `{"errorCode":..,"errorMessage":..}`: 400 `10000003` bad
//!   parameter, 404 `20000001` unknown device, 409 `20000016` state does not
//!   allow it, 403 `20000030` not offered / needs real name / pooled only,
//!   503 `10000024` busy.

use crate::config::ApiClass;
use crate::engine::{Change, DirChange, Engine, OrderState, Refusal};
use crate::gate::Gate;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use base64::Engine as _;
use gsl_domain::card::SimStatus;
use gsl_domain::carrier::Carrier;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

fn error(status: u16, code: &str, msg: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        axum::Json(json!({"errorCode": code, "errorMessage": msg})),
    )
        .into_response()
}

pub fn busy() -> Response {
    error(503, "10000024", "system busy")
}

pub fn over_limit(wait: Duration) -> Response {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut r = error(429, "10000029", "rate limit exceeded");
    r.headers_mut().insert(
        "Retry-After",
        secs.to_string().parse().expect("digits are a valid header"),
    );
    r
}

pub fn classify(parts: &http::request::Parts) -> ApiClass {
    match parts.method {
        http::Method::PUT | http::Method::POST => ApiClass::Change,
        _ if parts.uri.path().ends_with("/devices") => ApiClass::List,
        _ => ApiClass::Query,
    }
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
        _ => Err(error(401, "10000001", "invalid credentials")),
    }
}

fn jasper_status(s: SimStatus) -> &'static str {
    match s {
        SimStatus::NotActivated => "INVENTORY",
        SimStatus::Testable | SimStatus::Activatable => "ACTIVATION_READY",
        SimStatus::InUse => "ACTIVATED",
        SimStatus::Stopped => "DEACTIVATED",
        SimStatus::Closed => "RETIRED",
    }
}

fn refusal(r: &Refusal) -> Response {
    match r {
        Refusal::UnknownCard | Refusal::BatchUnknown => error(404, "20000001", &r.to_string()),
        Refusal::BadParam(_) | Refusal::TxnConflict => error(400, "10000003", &r.to_string()),
        Refusal::NotOffered
        | Refusal::RealNameRequired
        | Refusal::NotPooled
        | Refusal::RegionForbidden => error(403, "20000030", &r.to_string()),
        Refusal::Directional(_) => error(400, "20000040", &r.to_string()),
        _ => error(409, "20000016", &r.to_string()),
    }
}

fn request_id(h: &HeaderMap) -> Option<String> {
    h.get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn submit(e: &Engine, card: &str, txn: String, change: Change) -> Response {
    match e.submit(Carrier::Cu, card, &txn, change) {
        Ok(r) => (
            StatusCode::ACCEPTED,
            axum::Json(json!({"iccid": card, "requestId": r.order_no})),
        )
            .into_response(),
        Err(r) => refusal(&r),
    }
}

async fn get_device(State(g): State<Gate>, Path(iccid): Path<String>) -> Response {
    match g.engine.card(Carrier::Cu, &iccid) {
        None => error(404, "20000001", "unknown device"),
        Some(c) => axum::Json(json!({
            "iccid": c.id,
            "msisdn": c.msisdn,
            "imsi": c.imsi,
            "imei": c.imei,
            "status": jasper_status(c.status),
            "stopReason": c.stop_reason.code(),
            "speedTier": c.speed_kbps,
            "usageThresholdMb": c.threshold_mb,
            "realNameVerified": c.real_named,
            "pooled": c.pooled,
        }))
        .into_response(),
    }
}

async fn put_device(
    State(g): State<Gate>,
    Path(iccid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let e = &g.engine;
    let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "10000003", "body must be a JSON object");
    };
    let Some(card) = e.card(Carrier::Cu, &iccid) else {
        return error(404, "20000001", "unknown device");
    };
    let txn = request_id(&headers).unwrap_or_else(|| format!("anon-{:x}", rand::random::<u64>()));
    let change = if let Some(s) = m.get("status").and_then(Value::as_str) {
        match (s, card.status) {
            ("ACTIVATED", SimStatus::Stopped) => Change::Resume,
            ("ACTIVATED", _) => Change::Activate,
            ("DEACTIVATED", _) => Change::Stop,
            ("RETIRED", _) => Change::Close,
            _ => {
                return error(
                    400,
                    "10000003",
                    "status must be ACTIVATED, DEACTIVATED or RETIRED",
                );
            }
        }
    } else if let Some(k) = m.get("speedTier").and_then(Value::as_u64) {
        Change::Speed { kbps: k as u32 }
    } else if let Some(mb) = m.get("usageThresholdMb").and_then(Value::as_i64) {
        match (mb, card.threshold_mb) {
            (-1, _) => Change::ThresholdCancel,
            (mb, -1) => Change::ThresholdAdd { mb },
            (mb, _) => Change::ThresholdModify { mb },
        }
    } else {
        return error(400, "10000003", "nothing to change");
    };
    submit(e, &iccid, txn, change)
}

async fn put_directional(
    State(g): State<Gate>,
    Path(batch): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    #[derive(Deserialize)]
    struct Req {
        action: String,
        #[serde(default)]
        entries: Vec<String>,
        #[serde(default)]
        entry_id: String,
        #[serde(default)]
        entry: String,
        #[serde(default)]
        entry_ids: Vec<String>,
    }
    let Ok(r) = serde_json::from_slice::<Req>(&body) else {
        return error(400, "10000003", "bad directional request");
    };
    let plan = match r.action.as_str() {
        "ADD" => DirChange::Add { entries: r.entries },
        "MODIFY" => DirChange::Modify {
            id: r.entry_id,
            entry: r.entry,
        },
        "DELETE" => DirChange::Delete { ids: r.entry_ids },
        _ => return error(400, "10000003", "action must be ADD, MODIFY or DELETE"),
    };
    let txn = request_id(&headers).unwrap_or_else(|| format!("anon-{:x}", rand::random::<u64>()));
    submit(
        &g.engine,
        &format!("batch:{batch}"),
        txn,
        Change::Directional { batch, plan },
    )
}

fn show(o: crate::engine::Order) -> Response {
    axum::Json(json!({
        "requestId": o.order_no,
        "externalId": o.txn,
        "iccid": o.card,
        "status": match o.state { OrderState::Pending => "PENDING", OrderState::Succeeded => "COMPLETED", OrderState::Failed => "FAILED" },
    }))
    .into_response()
}

async fn get_request(State(g): State<Gate>, Path(id): Path<String>) -> Response {
    match g.engine.order(Carrier::Cu, &id) {
        Some(o) => show(o),
        None => error(404, "20000002", "unknown request"),
    }
}

async fn find_request(State(g): State<Gate>, Query(q): Query<HashMap<String, String>>) -> Response {
    match q
        .get("externalId")
        .and_then(|t| g.engine.order_by_txn(Carrier::Cu, t))
    {
        Some(o) => show(o),
        None => error(404, "20000002", "unknown request"),
    }
}

/// Routes under `/cu`.
pub fn router(g: Gate) -> Router {
    Router::new()
        .route(
            "/rws/api/v1/devices/{iccid}",
            get(get_device).put(put_device),
        )
        .route(
            "/rws/api/v1/batches/{batch}/directional",
            put(put_directional),
        )
        .route("/rws/api/v1/requests/{id}", get(get_request))
        .route("/rws/api/v1/requests", get(find_request))
        .layer(axum::middleware::from_fn_with_state(
            g.clone(),
            crate::gate::gate,
        ))
        .with_state(g)
}

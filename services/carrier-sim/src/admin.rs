//! The admin API: the referee and the remote control.
//!
//! Ground truth (`/admin/{carrier}/truth`): per card and operation, how many
//! times a change took effect, every transaction id accepted, and replays;
//! `/admin/stats`: requests and over-limit answers per API class. Faults,
//! limits and completion behaviour change at run time; cards and purchase
//! batches can be created or set for a test.

use crate::config::{ApiClass, Completion, Faults, Limits};
use crate::engine::{Batch, Engine};
use crate::inventory::CardRecord;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use gsl_domain::carrier::Carrier;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering;

type S = State<Arc<Engine>>;

fn bad(msg: impl std::fmt::Display) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": msg.to_string()})),
    )
        .into_response()
}

fn carrier(s: &str) -> Result<Carrier, Response> {
    s.parse::<Carrier>().map_err(bad)
}

async fn stats(State(e): S) -> Response {
    let mut out = serde_json::Map::new();
    for c in Carrier::ALL {
        let p = e.platform(c);
        let (applied, replays) = e.totals(c);
        out.insert(
            c.as_str().into(),
            json!({
                "requests": p.probes.requests.load(Ordering::Relaxed),
                "over_limit": {
                    "change": p.access.limiter.over_limit(ApiClass::Change),
                    "query": p.access.limiter.over_limit(ApiClass::Query),
                    "list": p.access.limiter.over_limit(ApiClass::List),
                },
                "allowed": {
                    "change": p.access.limiter.allowed(ApiClass::Change),
                    "query": p.access.limiter.allowed(ApiClass::Query),
                    "list": p.access.limiter.allowed(ApiClass::List),
                },
                "applied": applied,
                "replays": replays,
                "batch_refusals": p.probes.batch_refusals.load(Ordering::Relaxed),
                "by_path": *p.probes.by_path.lock().expect("path counts"),
                "materialised_cards": e.materialised(c),
                "limits": p.access.limiter.limits(),
                "faults": *p.faults.settings.read().expect("faults lock"),
            }),
        );
    }
    axum::Json(serde_json::Value::Object(out)).into_response()
}

async fn truth_all(State(e): S, Path(c): Path<String>) -> Response {
    match carrier(&c) {
        Ok(c) => axum::Json(e.all_truth(c)).into_response(),
        Err(r) => r,
    }
}

async fn truth_card(State(e): S, Path((c, card)): Path<(String, String)>) -> Response {
    match carrier(&c) {
        Ok(c) => axum::Json(e.truth(c, &card)).into_response(),
        Err(r) => r,
    }
}

async fn set_faults(
    State(e): S,
    Path(c): Path<String>,
    axum::Json(f): axum::Json<Faults>,
) -> Response {
    match carrier(&c) {
        Ok(c) => {
            e.set_faults(c, f);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(r) => r,
    }
}

async fn set_limits(
    State(e): S,
    Path(c): Path<String>,
    axum::Json(l): axum::Json<Limits>,
) -> Response {
    match carrier(&c) {
        Ok(c) => {
            e.platform(c).access.limiter.set(&l);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct PageQ {
    #[serde(default)]
    offset: u64,
    #[serde(default = "default_limit")]
    limit: u64,
}
fn default_limit() -> u64 {
    100
}

async fn cards(State(e): S, Path(c): Path<String>, Query(q): Query<PageQ>) -> Response {
    match carrier(&c) {
        Ok(c) => axum::Json(e.page(c, q.offset, q.limit.min(100_000))).into_response(),
        Err(r) => r,
    }
}

async fn get_card(State(e): S, Path((c, id)): Path<(String, String)>) -> Response {
    match carrier(&c) {
        Ok(c) => match e.card(c, &id) {
            Some(card) => axum::Json(card).into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        },
        Err(r) => r,
    }
}

async fn put_card(
    State(e): S,
    Path((c, id)): Path<(String, String)>,
    axum::Json(mut card): axum::Json<CardRecord>,
) -> Response {
    match carrier(&c) {
        Ok(c) => {
            card.id = id;
            e.put_card(c, card);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(r) => r,
    }
}

async fn drift(
    State(e): S,
    Path((c, id)): Path<(String, String)>,
    axum::Json(d): axum::Json<crate::engine::drift::Drift>,
) -> Response {
    match carrier(&c) {
        Ok(c) => match e.drift(c, &id, &d) {
            Some(card) => axum::Json(card).into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        },
        Err(r) => r,
    }
}

async fn put_batch(
    State(e): S,
    Path((c, b)): Path<(String, String)>,
    axum::Json(mut batch): axum::Json<Batch>,
) -> Response {
    match carrier(&c) {
        Ok(c) => {
            batch.batch_no = b.clone();
            e.platform(c)
                .world
                .batches
                .lock()
                .expect("batches lock")
                .insert(b, batch);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(r) => r,
    }
}

async fn get_batch(State(e): S, Path((c, b)): Path<(String, String)>) -> Response {
    match carrier(&c) {
        Ok(c) => match e
            .platform(c)
            .world
            .batches
            .lock()
            .expect("batches lock")
            .get(&b)
        {
            Some(batch) => axum::Json(batch).into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        },
        Err(r) => r,
    }
}

async fn traceparents(State(e): S, Path(c): Path<String>) -> Response {
    match carrier(&c) {
        Ok(c) => axum::Json(
            e.platform(c)
                .probes
                .traceparents
                .lock()
                .expect("traceparents lock")
                .iter()
                .cloned()
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(r) => r,
    }
}

async fn expire_tokens(State(e): S) -> Response {
    e.platform(Carrier::Cmcc)
        .access
        .tokens
        .lock()
        .expect("tokens lock")
        .clear();
    StatusCode::NO_CONTENT.into_response()
}

async fn set_completion(State(e): S, axum::Json(c): axum::Json<Completion>) -> Response {
    e.set_completion(c);
    StatusCode::NO_CONTENT.into_response()
}

async fn reset(State(e): S) -> Response {
    e.reset_truth();
    StatusCode::NO_CONTENT.into_response()
}

async fn clock(State(e): S) -> Response {
    axum::Json(json!({"now": e.now().to_rfc3339(), "scale": e.clock.scale()})).into_response()
}

pub fn router(e: Arc<Engine>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/admin/stats", get(stats))
        .route("/admin/clock", get(clock))
        .route("/admin/reset", post(reset))
        .route("/admin/completion", put(set_completion))
        .route("/admin/cmcc/expire-tokens", post(expire_tokens))
        .route("/admin/{carrier}/truth", get(truth_all))
        .route("/admin/{carrier}/truth/{card}", get(truth_card))
        .route("/admin/{carrier}/faults", put(set_faults))
        .route("/admin/{carrier}/traceparents", get(traceparents))
        .route("/admin/{carrier}/limits", put(set_limits))
        .route("/admin/{carrier}/cards", get(cards))
        .route("/admin/{carrier}/cards/{id}", get(get_card).put(put_card))
        .route("/admin/{carrier}/cards/{id}/drift", post(drift))
        .route(
            "/admin/{carrier}/batches/{batch}",
            get(get_batch).put(put_batch),
        )
        .with_state(e)
}

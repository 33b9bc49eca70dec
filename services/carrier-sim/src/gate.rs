//! What every carrier request goes through before its handler: injected
//! faults, authentication, and the per-class rate limit, each answered in the
//! carrier's own style.

use crate::config::ApiClass;
use crate::engine::Engine;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use gsl_domain::carrier::Carrier;
use rand::Rng;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The largest request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;

/// A response whose body fails after the headers: the connection is cut and
/// the client cannot tell whether the request took effect.
pub fn dropped() -> Response {
    let body = Body::from_stream(futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other(
            "connection dropped by fault injection",
        ))
    }));
    Response::new(body)
}

/// How one platform answers at the gate, in its own style: how it counts a
/// request against its limits, and what it says when busy, over the limit
/// or given bad credentials. Each platform module hands its own `STYLE`.
#[derive(Clone, Copy)]
pub struct Style {
    pub classify: fn(&http::request::Parts, &[u8]) -> ApiClass,
    pub busy: fn(&Engine) -> Response,
    pub over_limit: fn(&Engine, Duration) -> Response,
    pub authenticate: fn(&Engine, &http::request::Parts, &[u8]) -> Result<(), Response>,
}

/// Middleware state: the engine and which platform the router serves.
#[derive(Clone)]
pub struct Gate {
    pub engine: Arc<Engine>,
    pub carrier: Carrier,
    pub style: Style,
}

pub async fn gate(State(g): State<Gate>, req: Request, next: Next) -> Response {
    let p = g.engine.platform(g.carrier);
    p.probes.requests.fetch_add(1, Ordering::Relaxed);
    p.probes.count_path(req.uri().path());
    let faults = p.faults.settings.read().expect("faults lock").clone();
    let (delay, drop_before, error, is_busy, drop_after, error_after) = {
        let mut rng = rand::rng();
        let mut delay = faults.latency_ms;
        if faults.jitter_ms > 0 {
            delay += rng.random_range(0..=faults.jitter_ms);
        }
        if faults.spike_rate > 0.0 && rng.random_bool(faults.spike_rate.clamp(0.0, 1.0)) {
            delay += faults.spike_ms;
        }
        let mut roll = |r: f64| r > 0.0 && rng.random_bool(r.clamp(0.0, 1.0));
        (
            delay,
            roll(faults.drop_before_rate),
            roll(faults.error_rate),
            roll(faults.busy_rate),
            roll(faults.drop_after_rate),
            roll(faults.error_after_rate),
        )
    };
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if drop_before {
        return dropped();
    }
    if error {
        return Response::builder()
            .status(503)
            .body(Body::from("service unavailable (injected)"))
            .expect("static response");
    }
    if is_busy {
        return (g.style.busy)(&g.engine);
    }
    let (parts, body) = req.into_parts();
    if let Some(tp) = parts
        .headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
    {
        let mut q = p.probes.traceparents.lock().expect("traceparents lock");
        if q.len() >= crate::engine::TRACEPARENTS_KEPT {
            q.pop_front();
        }
        q.push_back(tp.to_owned());
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return Response::builder()
            .status(413)
            .body(Body::from("request body too large"))
            .expect("static response");
    };
    if let Err(resp) = (g.style.authenticate)(&g.engine, &parts, &bytes) {
        return resp;
    }
    let class = (g.style.classify)(&parts, &bytes);
    if let Err(wait) = p.access.limiter.check(class) {
        return (g.style.over_limit)(&g.engine, wait);
    }
    let resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let drop_this = class == crate::config::ApiClass::Change
        && p.faults
            .drop_change_answers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
    if drop_after || drop_this {
        return dropped();
    }
    let error_this = class == crate::config::ApiClass::Change
        && p.faults
            .error_change_answers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
    if error_this || error_after {
        return Response::builder()
            .status(500)
            .body(Body::from(
                "internal error after the change was made (injected)",
            ))
            .expect("static response");
    }
    resp
}

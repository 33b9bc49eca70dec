//! The admin HTTP server: `/healthz`, `/readyz`, `/metrics`.
//!
//! Kubernetes probes `/healthz` for liveness (the process answers) and
//! `/readyz` for readiness (the service's own check: NATS connected, streams
//! and buckets present, carrier reachable...). Prometheus scrapes `/metrics`.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

/// A readiness check: `Ok(())` when ready, else why not.
pub type ReadyCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

#[derive(Clone)]
struct AdminState {
    registry: Arc<Mutex<Registry>>,
    ready: ReadyCheck,
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(s): State<AdminState>) -> Response {
    match (s.ready)().await {
        Ok(()) => "ready".into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}")).into_response(),
    }
}

async fn metrics(State(s): State<AdminState>) -> Response {
    let mut out = String::new();
    let reg = s.registry.lock().expect("registry lock");
    match prometheus_client::encoding::text::encode(&mut out, &reg) {
        Ok(()) => (
            [(
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            out,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// The admin router (for embedding, or use [`serve`]).
pub fn router(registry: Arc<Mutex<Registry>>, ready: ReadyCheck) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(AdminState { registry, ready })
}

/// Serve the admin endpoints until `shutdown` resolves. Returns the bound address.
pub async fn serve(
    addr: &str,
    registry: Arc<Mutex<Registry>>,
    ready: ReadyCheck,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = router(registry, ready);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
    });
    Ok(bound)
}

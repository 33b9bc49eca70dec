//! # gsl-telemetry: what every service shows its operators
//!
//! ## Layout
//!
//! * [`init_logs`]: JSON logs to stdout, filtered by `RUST_LOG` (default `info`);
//! * [`admin`]: the admin HTTP server: `/healthz` (alive), `/readyz` (a
//!   service-specific check), `/metrics` (Prometheus text format);
//! * [`propagate`]: W3C trace context in NATS headers;
//! * [`shutdown`]: a future that resolves on SIGTERM or Ctrl-C, and a
//!   broadcast that tells every task to drain.
#![forbid(unsafe_code)]

pub mod admin;
pub mod propagate;
pub mod shutdown;

pub use prometheus_client;

use tracing_subscriber::EnvFilter;

/// JSON logs with the service name; `RUST_LOG` filters (default `info`).
/// Safe to call twice (the second call does nothing), so tests that start
/// several services in one process can all call it.
pub fn init_logs(service: &'static str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_env_filter(filter)
        .try_init();
    tracing::debug!(service, "logging initialised");
}

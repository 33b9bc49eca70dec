//! # gsl-telemetry: what every service shows its operators
//!
//! ## Layout
//!
//! * [`init_logs`]: JSON logs to stdout, filtered by `RUST_LOG` (default `info`);
//! * [`admin`]: the admin HTTP server: `/healthz` (alive), `/readyz` (a
//!   service-specific check), `/metrics` (Prometheus text format);
//! * [`otel`]: OpenTelemetry tracing from the `OTEL_*` variables, flushed on shutdown;
//! * [`propagate`], [`grpc`]: W3C trace context in NATS headers and gRPC metadata;
//! * [`mask`]: personal data (MSISDN, IMSI) masked for spans and logs;
//! * [`shutdown`]: a future that resolves on SIGTERM or Ctrl-C, and a
//!   broadcast that tells every task to drain.
#![forbid(unsafe_code)]

pub mod admin;
pub mod grpc;
pub mod otel;
pub mod propagate;
pub mod shutdown;

pub use otel::{Telemetry, init};
pub use prometheus_client;

use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Record the span's trace id in its `trace_id` field (declared
/// `tracing::field::Empty`), so every log line inside it carries the id.
pub fn record_trace_id(span: &tracing::Span) {
    let id = span.context().span().span_context().trace_id();
    if id != opentelemetry::trace::TraceId::INVALID {
        span.record("trace_id", id.to_string());
    }
}

/// Mask personal data (MSISDN, IMSI): keep the first 4 and last 4 characters.
pub fn mask(s: &str) -> String {
    let n = s.chars().count();
    if n <= 8 {
        return "*".repeat(n);
    }
    s.chars()
        .enumerate()
        .map(|(i, c)| if i < 4 || i >= n - 4 { c } else { '*' })
        .collect()
}

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

#[cfg(test)]
mod tests {
    #[test]
    fn masking() {
        assert_eq!(super::mask("1064123456789"), "1064*****6789");
        assert_eq!(super::mask("460041234567890"), "4600*******7890");
        assert_eq!(super::mask("12345"), "*****");
        assert_eq!(super::mask(""), "");
    }
}

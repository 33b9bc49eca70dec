//! W3C trace context across process boundaries: into and out of NATS headers
//! (gRPC metadata and HTTP headers follow in `grpc` and the adapters).
//!
//! Uses the global text-map propagator that [`crate::init`] installs; without
//! it (tests that do not set up tracing) nothing is injected and extraction
//! yields no parent.

use async_nats::HeaderMap;
use gsl_bus::trace::{HeaderExtractor, HeaderInjector, has_trace_context};
use opentelemetry::global;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Write the current span's context into NATS headers.
pub fn inject_nats(headers: &mut HeaderMap) {
    let cx = tracing::Span::current().context();
    global::get_text_map_propagator(|p| p.inject_context(&cx, &mut HeaderInjector(headers)));
}

/// Make `span` a child of the context in the headers, when they carry one
/// (an empty extraction would orphan the span, so it is skipped).
pub fn set_parent_from_nats(span: &tracing::Span, headers: Option<&HeaderMap>) {
    if !has_trace_context(headers) {
        return;
    }
    if let Some(h) = headers {
        let cx = global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(h)));
        let _ = span.set_parent(cx);
    }
}

/// Header naming the work order's trace on items that have a trace of their own.
pub const ORDER_TRACEPARENT: &str = "Gsl-Order-Traceparent";

/// Add a link from `span` to the order's trace when the message carries one.
pub fn link_order_trace(span: &tracing::Span, headers: Option<&HeaderMap>) {
    use opentelemetry::trace::TraceContextExt;
    let Some(v) = headers.and_then(|h| h.get(ORDER_TRACEPARENT)) else {
        return;
    };
    let mut h = HeaderMap::new();
    h.insert("traceparent", v.as_str());
    let cx = global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(&h)));
    let sc = cx.span().span_context().clone();
    if sc.is_valid() {
        span.add_link(sc);
    }
}

/// The current span's `traceparent`, if it has one (stored on work orders so
/// an operator can find the trace).
pub fn current_traceparent() -> Option<String> {
    let mut h = HeaderMap::new();
    inject_nats(&mut h);
    h.get("traceparent").map(|v| v.as_str().to_owned())
}

//! W3C trace context in NATS headers.
//!
//! The `opentelemetry-nats` crate pins old versions; this is the 40 lines it
//! would give us. Use with the global text-map propagator (set up by
//! `gsl-telemetry`) or any `TextMapPropagator`.

use async_nats::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector};

/// Writes propagation fields into NATS headers.
pub struct HeaderInjector<'a>(pub &'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

/// Reads propagation fields from NATS headers.
pub struct HeaderExtractor<'a>(pub &'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_ref()).collect()
    }
}

/// Whether the headers carry a trace context at all. Extracting from empty
/// headers and setting the result as a parent would orphan the span; check
/// this first.
pub fn has_trace_context(h: Option<&HeaderMap>) -> bool {
    h.and_then(|h| h.get(crate::names::headers::TRACEPARENT))
        .is_some_and(|v| !v.as_str().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use opentelemetry_sdk::propagation::TraceContextPropagator as W3c;

    #[test]
    fn round_trip_through_headers() {
        let sc = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        let cx = opentelemetry::Context::new().with_remote_span_context(sc.clone());
        let mut h = HeaderMap::new();
        assert!(!has_trace_context(Some(&h)));
        W3c::new().inject_context(&cx, &mut HeaderInjector(&mut h));
        assert!(has_trace_context(Some(&h)));
        assert_eq!(
            h.get("traceparent").unwrap().as_str(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        let back = W3c::new().extract(&HeaderExtractor(&h));
        assert_eq!(back.span().span_context().trace_id(), sc.trace_id());
        assert!(HeaderExtractor(&h).keys().contains(&"traceparent"));
    }
}

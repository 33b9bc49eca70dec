//! OpenTelemetry tracing, configured by the standard `OTEL_*` variables.
//!
//! * Export (OTLP over gRPC, batched) is on when `OTEL_EXPORTER_OTLP_ENDPOINT`
//!   or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set, and off when
//!   `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`.
//! * Without export, spans still get trace ids (sampled off) so trace context
//!   still crosses every hop and logs still carry trace ids.
//! * `service.name` is the service's own unless `OTEL_SERVICE_NAME` overrides
//!   it; `service.version`, `k8s.pod.name` (`POD_NAME`), and the service's
//!   attributes (the carrier of an adapter) are resource attributes;
//!   `OTEL_RESOURCE_ATTRIBUTES` adds more.
//! * Keep the returned [`Telemetry`] and call [`Telemetry::shutdown`] on exit,
//!   or the last spans are lost.

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The tracing pipeline of a process. Flush it on exit.
pub struct Telemetry {
    provider: SdkTracerProvider,
    pub exporting: bool,
}

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.trim().is_empty())
}

/// Whether the environment asks for span export.
pub fn export_enabled() -> bool {
    let disabled = env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || env("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"));
    !disabled
        && (env("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
            || env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some())
}

/// Logs (JSON, with the span list so entry spans' `trace_id` appear on every
/// line) and OpenTelemetry tracing. Must be called inside a tokio runtime.
pub fn init(service: &'static str, attributes: &[(&'static str, String)]) -> Telemetry {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let mut attrs = vec![KeyValue::new("service.version", env!("CARGO_PKG_VERSION"))];
    if let Some(pod) = env("POD_NAME").or_else(|| env("HOSTNAME")) {
        attrs.push(KeyValue::new("k8s.pod.name", pod));
    }
    attrs.extend(attributes.iter().map(|(k, v)| KeyValue::new(*k, v.clone())));
    let resource = Resource::builder()
        .with_service_name(env("OTEL_SERVICE_NAME").unwrap_or_else(|| service.to_owned()))
        .with_attributes(attrs)
        .build();
    let exporting = export_enabled();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    let mut exporting_ok = false;
    if exporting {
        match opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
        {
            Ok(exporter) => {
                builder = builder.with_batch_exporter(exporter);
                exporting_ok = true;
            }
            Err(e) => {
                eprintln!("{service}: OTLP exporter not started ({e}); spans are not exported")
            }
        }
    }
    if !exporting_ok {
        // Keep trace ids and propagation; record nothing.
        builder = builder.with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOff)));
    }
    let provider = builder.build();
    let tracer = provider.tracer(service);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(false)
        .with_span_list(true);
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .try_init();
    Telemetry {
        provider,
        exporting: exporting_ok,
    }
}

impl Telemetry {
    /// Flush and stop the exporter.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("telemetry shutdown: {e}");
        }
    }
}

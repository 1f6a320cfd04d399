//! Span export over OTLP/gRPC: the SDK's tracer provider with a batch exporter, and the layer that feeds it.

use std::time::Duration;

use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_otlp::{SpanExporter, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

use super::{OtelConfig, TelemetryConfig, TelemetryError};

/// The instrumentation scope of adk's spans.
const SCOPE: &str = "adk";

pub(super) fn provider(config: &TelemetryConfig, otel: &OtelConfig) -> Result<SdkTracerProvider, TelemetryError> {
    if !(0.0..=1.0).contains(&otel.sample_ratio) {
        return Err(TelemetryError::Ratio { field: "otel.sample_ratio", value: otel.sample_ratio });
    }
    // The gRPC channel spawns its worker on the current runtime; without one, tonic would panic.
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(TelemetryError::NoRuntime);
    }
    let exporter = SpanExporter::builder()
        .with_tonic()
        .with_endpoint(otel.endpoint.clone())
        .with_timeout(Duration::from_millis(otel.timeout_ms))
        .build()
        .map_err(|source| TelemetryError::Exporter { endpoint: otel.endpoint.clone(), source: Box::new(source) })?;
    let mut resource = Resource::builder();
    if let Some(name) = &config.service_name {
        resource = resource.with_service_name(name.clone());
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(otel.sample_ratio))))
        .with_resource(resource.build())
        .build())
}

pub(super) fn layer<S>(provider: &SdkTracerProvider) -> impl Layer<S> + Send + Sync
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer(SCOPE))
}

/// The 32-hex-digit id of the exported trace span `id` belongs to, if it is sampled.
pub(super) fn trace_id(id: &tracing::span::Id) -> Option<String> {
    let context = tracing::dispatcher::get_default(|dispatch| tracing_opentelemetry::get_otel_context(id, dispatch))?;
    let span = context.span();
    let span_context = span.span_context();
    (span_context.is_valid() && span_context.is_sampled()).then(|| span_context.trace_id().to_string())
}

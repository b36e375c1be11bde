//! Trace export over OTLP, and W3C trace context across the gateway → server hop.
//!
//! Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set.
//! When off there is no OpenTelemetry layer at all, and [`inject`] / [`continue_trace`] return
//! after reading one flag. When on, the service's `tracing` spans (the `groups_*` crates' own,
//! nothing of h2/hyper/tonic, which would also trace the exporter's own calls) go out in batches
//! over OTLP/gRPC, and `traceparent` links the gateway's span to the server's: one removal, one
//! trace.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// Set once export is running: the only thing the hot path looks at when it is not.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// The longest a stopping process waits for its last spans to be sent.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Environment variables that turn export on (the standard OpenTelemetry names).
const ENDPOINT_VARIABLES: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// Whether spans are being exported (and trace context propagated).
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Keeps the exporter alive; dropping it flushes the spans not yet sent and stops export.
/// Hold it in `main` until the services have stopped.
#[must_use = "dropping the guard stops trace export"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    pub(crate) const fn off() -> Self {
        Self { provider: None }
    }

    /// Whether this guard exports spans.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry")
            .field("exporting", &self.exporting())
            .finish()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            EXPORTING.store(false, Ordering::Relaxed);
            // Sends what is still batched, for a bounded time: an unreachable collector must not
            // hold up a shutdown the orchestrator is timing.
            if let Err(error) = provider.shutdown_with_timeout(FLUSH_TIMEOUT) {
                eprintln!("trace export: flushing at shutdown failed: {error}");
            }
        }
    }
}

/// The OpenTelemetry layer and its provider, when an endpoint is configured. The exporter's
/// gRPC channel is driven by the Tokio runtime, so this needs one: without it (or when the
/// exporter cannot be built) export stays off, with a message on stderr.
pub(crate) fn layer<S>(
    service: &'static str,
) -> Option<(impl Layer<S> + Send + Sync + 'static, SdkTracerProvider)>
where
    S: Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
{
    let configured = ENDPOINT_VARIABLES
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()));
    if !configured {
        return None;
    }
    // The subscriber is not installed yet: these messages go to stderr directly.
    if tokio::runtime::Handle::try_current().is_err() {
        eprintln!("trace export: needs a Tokio runtime; spans are not exported");
        return None;
    }
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
    {
        Ok(exporter) => exporter,
        Err(error) => {
            eprintln!(
                "trace export: cannot build the OTLP exporter ({error}); spans are not exported"
            );
            return None;
        }
    };
    // OTEL_SERVICE_NAME, when set, names the service; else the binary's name does.
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service);
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    let tracer = provider.tracer(service);
    let ours =
        tracing_subscriber::filter::filter_fn(|metadata| metadata.target().starts_with("groups_"));
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(ours);
    Some((layer, provider))
}

/// Called once the subscriber with the layer is installed.
pub(crate) fn started(provider: SdkTracerProvider) -> Telemetry {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    EXPORTING.store(true, Ordering::Relaxed);
    Telemetry {
        provider: Some(provider),
    }
}

/// Writes `span`'s trace context (`traceparent`, `tracestate`) through `set`, for an outgoing
/// call. Does nothing unless exporting.
pub fn inject(span: &tracing::Span, set: impl FnMut(&str, String)) {
    if !exporting() {
        return;
    }
    struct Setter<F>(F);
    impl<F: FnMut(&str, String)> Injector for Setter<F> {
        fn set(&mut self, key: &str, value: String) {
            (self.0)(key, value);
        }
    }
    let context = span.context();
    let mut setter = Setter(set);
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut setter);
    });
}

/// The `request` span of a served request, at INFO, with the given fields (`request_id = ...`
/// first). When exporting it is also marked as an OpenTelemetry SERVER span; the marker is left
/// out otherwise, so that log lines do not carry it.
#[macro_export]
macro_rules! request_span {
    ($($fields:tt)*) => {
        if $crate::exporting() {
            ::tracing::info_span!("request", otel.kind = "server", $($fields)*)
        } else {
            ::tracing::info_span!("request", $($fields)*)
        }
    };
}

/// Renames `span` as exported, once the name is known (a route, after routing); `name` is only
/// called when exporting.
pub fn name_span(span: &tracing::Span, name: impl FnOnce() -> String) {
    if !exporting() {
        return;
    }
    use opentelemetry::trace::TraceContextExt as _;
    span.context().span().update_name(name());
}

/// Makes the caller's trace (a `traceparent` header, if any) the parent of `span`, which must
/// not have been entered yet. Does nothing unless exporting.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    // Without `traceparent` the span keeps its place in the local tree (or starts a trace).
    if !exporting() || !headers.contains_key("traceparent") {
        return;
    }
    struct Headers<'a>(&'a http::HeaderMap);
    impl Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|value| value.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(http::HeaderName::as_str).collect()
        }
    }
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&Headers(headers))
    });
    if let Err(error) = span.set_parent(parent) {
        tracing::debug!(%error, "cannot continue the caller's trace");
    }
}

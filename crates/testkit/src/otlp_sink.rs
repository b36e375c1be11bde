//! `OtlpSink`: a stand-in for an OpenTelemetry collector. It accepts OTLP/gRPC trace exports
//! (`opentelemetry.proto.collector.trace.v1.TraceService/Export`) on a loopback port and keeps
//! the spans, for tests that follow a request's trace through the processes.

use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

/// A span as a collector received it, with ids in lower-case hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedSpan {
    /// The exporting process's `service.name` resource attribute.
    pub service: String,
    /// The span's name.
    pub name: String,
    /// Its kind as OTLP spells it: `SPAN_KIND_SERVER`, `SPAN_KIND_INTERNAL`, ...
    pub kind: String,
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// 16 hex digits, or empty for a trace's root span.
    pub parent_span_id: String,
    /// The span's attributes, values as text.
    pub attributes: Vec<(String, String)>,
}

impl ExportedSpan {
    /// The value of attribute `key`, if the span has it.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Default)]
struct Received {
    spans: Mutex<Vec<ExportedSpan>>,
    changed: Condvar,
}

impl Received {
    fn lock(&self) -> MutexGuard<'_, Vec<ExportedSpan>> {
        self.spans.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The gRPC service: keeps every span it is sent.
#[derive(Debug, Clone)]
struct Collector(Arc<Received>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let resource = resource_spans.resource.unwrap_or_default();
            let service = attributes(&resource.attributes)
                .into_iter()
                .find(|(key, _)| key == "service.name")
                .map(|(_, value)| value)
                .unwrap_or_default();
            for span in resource_spans
                .scope_spans
                .into_iter()
                .flat_map(|scope| scope.spans)
            {
                spans.push(ExportedSpan {
                    service: service.clone(),
                    kind: SpanKind::try_from(span.kind)
                        .map_or("SPAN_KIND_UNSPECIFIED", |kind| kind.as_str_name())
                        .to_owned(),
                    name: span.name,
                    trace_id: to_hex(&span.trace_id),
                    span_id: to_hex(&span.span_id),
                    parent_span_id: to_hex(&span.parent_span_id),
                    attributes: attributes(&span.attributes),
                });
            }
        }
        self.0.lock().extend(spans);
        self.0.changed.notify_all();
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// An OTLP trace collector on `127.0.0.1`, on a port of its own, until dropped.
#[derive(Debug)]
pub struct OtlpSink {
    addr: SocketAddr,
    received: Arc<Received>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl OtlpSink {
    /// Starts the collector on a thread (and Tokio runtime) of its own. Panics if it cannot.
    pub fn start() -> Self {
        let received = Arc::new(Received::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (bound_tx, bound_rx) = std::sync::mpsc::channel();
        let collector = Collector(Arc::clone(&received));
        let thread = thread::Builder::new()
            .name("otlp-sink".to_owned())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("groups-testkit: OTLP sink runtime");
                runtime.block_on(async move {
                    let incoming =
                        tonic::transport::server::TcpIncoming::bind(([127, 0, 0, 1], 0).into())
                            .expect("groups-testkit: OTLP sink cannot bind");
                    let _ = bound_tx.send(incoming.local_addr());
                    let served = tonic::transport::Server::builder()
                        .add_service(TraceServiceServer::new(collector))
                        .serve_with_incoming_shutdown(incoming, async {
                            let _ = stopped.await;
                        })
                        .await;
                    if let Err(error) = served {
                        eprintln!("groups-testkit: OTLP sink stopped: {error}");
                    }
                });
            })
            .expect("groups-testkit: cannot start the OTLP sink thread");
        let addr = bound_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("groups-testkit: the OTLP sink did not start")
            .expect("groups-testkit: the OTLP sink has no address");
        Self {
            addr,
            received,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The endpoint to give a process as `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn spans(&self) -> Vec<ExportedSpan> {
        self.received.lock().clone()
    }

    /// Waits until the spans received satisfy `done`; false if they did not within `timeout`.
    pub fn wait_for(&self, timeout: Duration, done: impl Fn(&[ExportedSpan]) -> bool) -> bool {
        let spans = self.received.lock();
        let (spans, _) = self
            .received
            .changed
            .wait_timeout_while(spans, timeout, |spans| !done(spans))
            .unwrap_or_else(PoisonError::into_inner);
        done(&spans)
    }
}

impl Drop for OtlpSink {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn attributes(pairs: &[KeyValue]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|pair| (pair.key.clone(), text(pair.value.as_ref())))
        .collect()
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

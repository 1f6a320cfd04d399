//! Spans exported over OTLP/gRPC reach a real collector endpoint on 127.0.0.1, decoded with the OpenTelemetry
//! protobuf definitions: span names, attributes, parent/child links, error status, the service name, and the trace
//! id on log lines.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use adk_runtime::observed::ObservedFn;
use adk_runtime::telemetry::{self, MakeWriter, OtelConfig, TelemetryConfig};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use tokio::sync::mpsc;
use tracing::Instrument;
use tracing::field::Empty;

/// An OTLP trace collector that hands every export request to the test.
struct Collector {
    received: mpsc::UnboundedSender<ExportTraceServiceRequest>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.received.send(request.into_inner()).expect("the test is listening");
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

async fn start_collector() -> (SocketAddr, mpsc::UnboundedReceiver<ExportTraceServiceRequest>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (received, requests) = mpsc::unbounded_channel();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Collector { received }))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    (addr, requests)
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

fn string_attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| match kv.value.as_ref() {
        Some(AnyValue { value: Some(any_value::Value::StringValue(s)) }) => Some(s.as_str()),
        _ => None,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_otlp_collector_with_names_attributes_links_and_error_status() {
    let (addr, mut requests) = start_collector().await;
    let logs = Captured::default();
    let config = TelemetryConfig::default()
        .with_filter("info")
        .with_service_name("otel-test-agent")
        .with_otel(OtelConfig::default().with_endpoint(format!("http://{addr}")));
    let guard = telemetry::init_with_writer(&config, logs.clone()).unwrap();

    // What `#[observed(err(level = "warn"))]` expands to: the span in the caller's crate (declaring the status
    // fields), the call bracketed by the runtime. A WARN event does not set the status on its own, so the error
    // status below comes from the runtime recording it on the span.
    static OBSERVED: ObservedFn =
        ObservedFn::new("otel::complete", "tests/otel.rs:1").with_error_level(tracing::Level::WARN);
    async {
        let span =
            tracing::info_span!("complete", model = "small", otel.status_code = Empty, otel.status_description = Empty);
        async {
            let call = OBSERVED.start();
            call.finish(&Err::<(), _>("quota exhausted"));
        }
        .instrument(span)
        .await;
        tracing::info!("handled");
    }
    .instrument(tracing::info_span!("handle_request", request_id = "r-1"))
    .await;

    // Shutting down flushes the batch; it blocks on the export, which runs on this runtime.
    tokio::task::spawn_blocking(move || guard.shutdown()).await.unwrap().unwrap();

    let mut spans: Vec<Span> = Vec::new();
    let mut service_names = Vec::new();
    while let Ok(request) = requests.try_recv() {
        for resource_spans in request.resource_spans {
            let resource = resource_spans.resource.unwrap_or_default();
            service_names.push(string_attribute(&resource.attributes, "service.name").map(str::to_owned));
            spans.extend(resource_spans.scope_spans.into_iter().flat_map(|scope| scope.spans));
        }
    }
    assert!(service_names.iter().all(|name| name.as_deref() == Some("otel-test-agent")), "{service_names:?}");
    let named =
        |name: &str| spans.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no span {name} in {spans:?}"));
    let (parent, child) = (named("handle_request"), named("complete"));

    assert!(parent.parent_span_id.is_empty(), "handle_request is a root");
    assert_eq!(child.parent_span_id, parent.span_id, "complete is a child of handle_request");
    assert_eq!(child.trace_id, parent.trace_id);
    assert_eq!(string_attribute(&parent.attributes, "request_id"), Some("r-1"));
    assert_eq!(string_attribute(&child.attributes, "model"), Some("small"));

    let status = child.status.clone().expect("an error status");
    assert_eq!(status.code, StatusCode::Error as i32);
    assert_eq!(status.message, "quota exhausted");
    assert_ne!(parent.status.clone().unwrap_or_default().code, StatusCode::Error as i32);

    // Log lines inside an exported span carry its trace id; no span declared a `trace_id` field.
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let handled = lines.iter().find(|l| l["message"] == "handled").expect("the handled line");
    assert_eq!(handled["trace_id"], hex(&parent.trace_id), "{handled}");
    assert_eq!(handled["request_id"], "r-1");
    let failed = lines.iter().find(|l| l["target"] == "adk::observed").expect("the error line");
    assert_eq!((&failed["level"], &failed["error"]), (&"WARN".into(), &"quota exhausted".into()));
    assert_eq!(failed["trace_id"], hex(&child.trace_id));
}

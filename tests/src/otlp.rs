//! A real OTLP/HTTP receiver on a loopback port: decodes each
//! `POST /v1/traces` and `POST /v1/metrics` protobuf body with the
//! OpenTelemetry proto types and keeps the spans and metric exports for the
//! test to inspect.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

/// A received span with the `service.name` of its resource.
#[derive(Debug, Clone)]
pub struct Received {
    /// The resource's `service.name`.
    pub service: String,
    /// The span.
    pub span: Span,
}

/// The receiver; stops with the test's runtime.
#[derive(Debug, Clone)]
pub struct OtlpReceiver {
    addr: SocketAddr,
    kept: Kept,
    https: bool,
}

/// What the receiver keeps.
#[derive(Debug, Clone, Default)]
struct Kept {
    spans: Arc<Mutex<Vec<Received>>>,
    metrics: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
    paths: Arc<Mutex<Vec<String>>>,
}

impl OtlpReceiver {
    /// Listens on `127.0.0.1:0`.
    pub async fn start() -> OtlpReceiver {
        let kept = Kept::default();
        let k = kept.clone();
        let addr = crate::serve_loopback(move |request| receive(k.clone(), request)).await;
        OtlpReceiver {
            addr,
            kept,
            https: false,
        }
    }

    /// One that serves HTTPS with `issued` (see [`crate::tls`]).
    pub async fn start_tls(issued: &crate::tls::Issued) -> OtlpReceiver {
        let kept = Kept::default();
        let k = kept.clone();
        let acceptor = crate::tls::acceptor(issued, &[]);
        let addr =
            crate::serve_loopback_with(Some(acceptor), move |request| receive(k.clone(), request))
                .await;
        OtlpReceiver {
            addr,
            kept,
            https: true,
        }
    }

    /// Waits (at most `timeout`) until `done` holds for the metric exports
    /// received.
    pub async fn wait_for_metrics(
        &self,
        timeout: Duration,
        done: impl Fn(&[ExportMetricsServiceRequest]) -> bool,
    ) -> Vec<ExportMetricsServiceRequest> {
        wait_until(&self.kept.metrics, timeout, done).await
    }

    /// The base URL to configure as `telemetry.otlp_endpoint`.
    pub fn endpoint(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Request paths received so far.
    pub fn paths(&self) -> Vec<String> {
        self.kept.paths.lock().expect("not poisoned").clone()
    }

    /// Waits (at most `timeout`) until `done` holds for the spans received.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        wait_until(&self.kept.spans, timeout, done).await
    }
}

/// What `kept` holds once `done` holds for it, or after `timeout`.
async fn wait_until<T: Clone>(
    kept: &Mutex<Vec<T>>,
    timeout: Duration,
    done: impl Fn(&[T]) -> bool,
) -> Vec<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let items = kept.lock().expect("not poisoned").clone();
        if done(&items) || Instant::now() >= deadline {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn receive(kept: Kept, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_string();
    kept.paths.lock().expect("not poisoned").push(path.clone());
    let Ok(body) = request.into_body().collect().await else {
        return status(400);
    };
    if path == "/v1/metrics" {
        let Ok(export) = ExportMetricsServiceRequest::decode(body.to_bytes()) else {
            return status(400);
        };
        kept.metrics.lock().expect("not poisoned").push(export);
        return protobuf(ExportMetricsServiceResponse::default().encode_to_vec());
    }
    let Ok(export) = ExportTraceServiceRequest::decode(body.to_bytes()) else {
        return status(400);
    };
    let mut spans = kept.spans.lock().expect("not poisoned");
    for resource in export.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref())
            .map(|v| format!("{:?}", v.value))
            .unwrap_or_default();
        for scope in resource.scope_spans {
            for span in scope.spans {
                spans.push(Received {
                    service: service.clone(),
                    span,
                });
            }
        }
    }
    protobuf(ExportTraceServiceResponse::default().encode_to_vec())
}

fn protobuf(body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-protobuf"),
    );
    response
}

fn status(code: u16) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = http::StatusCode::from_u16(code).unwrap_or_default();
    response
}

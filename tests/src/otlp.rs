//! A real OTLP/HTTP trace receiver on a loopback port: decodes each
//! `POST /v1/traces` protobuf body with the OpenTelemetry proto types and
//! keeps the spans for the test to inspect.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
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
    spans: Arc<Mutex<Vec<Received>>>,
    paths: Arc<Mutex<Vec<String>>>,
}

impl OtlpReceiver {
    /// Listens on `127.0.0.1:0`.
    pub async fn start() -> OtlpReceiver {
        let spans: Arc<Mutex<Vec<Received>>> = Arc::default();
        let paths: Arc<Mutex<Vec<String>>> = Arc::default();
        let (s, p) = (spans.clone(), paths.clone());
        let addr =
            crate::serve_loopback(move |request| receive(s.clone(), p.clone(), request)).await;
        OtlpReceiver { addr, spans, paths }
    }

    /// The base URL to configure as `telemetry.otlp_endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Request paths received so far.
    pub fn paths(&self) -> Vec<String> {
        self.paths.lock().expect("not poisoned").clone()
    }

    /// Waits (at most `timeout`) until `done` holds for the spans received.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans.lock().expect("not poisoned").clone();
            if done(&spans) || Instant::now() >= deadline {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn receive(
    spans: Arc<Mutex<Vec<Received>>>,
    paths: Arc<Mutex<Vec<String>>>,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    paths
        .lock()
        .expect("not poisoned")
        .push(request.uri().path().to_string());
    let Ok(body) = request.into_body().collect().await else {
        return status(400);
    };
    let Ok(export) = ExportTraceServiceRequest::decode(body.to_bytes()) else {
        return status(400);
    };
    let mut spans = spans.lock().expect("not poisoned");
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
    let mut response = Response::new(Full::new(Bytes::from(
        ExportTraceServiceResponse::default().encode_to_vec(),
    )));
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

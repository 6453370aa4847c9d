//! An OTLP/HTTP sink for load runs: accepts every export, reads and drops
//! the body, answers an empty protobuf response. Counts nothing; it only
//! has to keep up.
//!
//! Usage: `otlp-sink [ADDR]` (default 127.0.0.1:4318).

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::Response;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4318".into())
        .parse()?;
    let listener = TcpListener::bind(addr).await?;
    eprintln!("otlp-sink listening on {addr}");
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let service = service_fn(|request: http::Request<hyper::body::Incoming>| async {
                let _ = request.into_body().collect().await;
                let mut response = Response::new(Full::new(Bytes::new()));
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/x-protobuf"),
                );
                Ok::<_, Infallible>(response)
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

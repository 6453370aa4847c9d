//! The batch request reader of `POST /api/v1/batch`: the JSON body and
//! each operation's request (method, path, headers, body).
//!
//! Input: the batch body.
//!
//! Invariants: more than the operation limit is refused as such; each
//! operation gets a request or a reason, in order; a request has the
//! operation's method (upper-case), an absolute path that is not the batch
//! endpoint's own (a batch cannot hold a batch, however the path is
//! spelled), its own request id, and a JSON body typed as JSON unless the
//! operation typed it.

#![no_main]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use trellis::error::ApiError;

const MAX_OPERATIONS: usize = 16;
const BATCH: &str = "/api/v1/batch";

fuzz_target!(|data: &[u8]| {
    let result = trellis::fuzz::batch(data, MAX_OPERATIONS);
    let parsed: Option<Value> = serde_json::from_slice(data).ok();
    let operations = parsed
        .as_ref()
        .and_then(|v| v.get("operations")?.as_array().cloned());
    let (atomic, requests) = match result {
        Ok(read) => read,
        Err(ApiError::TooManyOperations { limit }) => {
            assert_eq!(limit, MAX_OPERATIONS);
            let count = operations.map_or(0, |ops| ops.len());
            assert!(
                count > MAX_OPERATIONS,
                "{count} operations refused as too many"
            );
            return;
        }
        Err(_) => return,
    };
    let operations = operations.expect("a batch that reads has operations");
    assert_eq!(requests.len(), operations.len());
    assert!(requests.len() <= MAX_OPERATIONS);
    let declared_atomic = parsed
        .as_ref()
        .and_then(|v| v.get("atomic")?.as_bool())
        .unwrap_or(false);
    assert_eq!(atomic, declared_atomic);

    for (index, (request, op)) in requests.into_iter().zip(&operations).enumerate() {
        let Ok(request) = request else {
            continue;
        };
        let method = op["method"].as_str().expect("a method");
        assert_eq!(request.method().as_str(), method.to_ascii_uppercase());
        let path = request.uri().path();
        assert!(path.starts_with('/'), "path {path:?}");
        assert_ne!(path, BATCH, "a batch inside the batch: {:?}", op["path"]);
        assert_eq!(
            request.headers()["x-request-id"],
            format!("fuzz-{index}").as_str()
        );
        let typed = op["headers"]
            .as_object()
            .is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case("content-type")));
        let content_type = request.headers().get("content-type").cloned();
        let body = ready_bytes(request.into_body());
        match &op["body"] {
            Value::Null => assert!(body.is_empty()),
            Value::String(text) => assert_eq!(body, text.as_bytes()),
            json => {
                let sent: Value = serde_json::from_slice(&body).expect("a JSON body");
                assert_eq!(&sent, json);
                if !typed {
                    assert_eq!(content_type.expect("a content type"), "application/json");
                }
            }
        }
    }
});

/// The bytes of a whole body, which is ready at once.
fn ready_bytes(body: Full<Bytes>) -> Vec<u8> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut collect = std::pin::pin!(body.collect());
    match collect.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(Ok(collected)) => collected.to_bytes().to_vec(),
        std::task::Poll::Ready(Err(never)) => match never {},
        std::task::Poll::Pending => panic!("a whole body is ready"),
    }
}

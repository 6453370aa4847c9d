//! One request to a `wasi:http` component: the world `wasmtime serve` and
//! Spin serve (`wasi:http/incoming-handler@0.2`), served by
//! `wasmtime-wasi-http`'s host side. As with our own world, each request
//! gets a fresh instance under the plugin's limits (concurrency and the
//! host's instance budget, memory, deadline, body sizes). The response
//! streams: its head goes out as soon as the guest sets it, its body as the
//! guest writes it, while the guest call runs on its own task.
//!
//! Layer: `plugin`; it may call `capability` (the store state) and
//! `error`, nothing above `plugin`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use opentelemetry::Context;
use tokio::sync::oneshot::Receiver;
use tokio::task::JoinHandle;
use wasmtime::Store;
use wasmtime::component::Resource;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::types::{HostIncomingRequest, HostResponseOutparam};
use wasmtime_wasi_http::{WasiBody, WasiHttpView};

use super::LoadedPlugin;
use super::call::Admitted;
use crate::capability::HostState;
use crate::error::ApiError;

impl LoadedPlugin {
    /// Runs `request` (its path already below the mount) in a fresh
    /// instance of this `wasi:http` component. Answers when the guest sets
    /// its response; the body then streams under `max_response_body` and
    /// the deadline. Errors before the response head are [`ApiError`]s, as
    /// for our own world; a failure while the body streams ends the body
    /// with an error (the client sees a cut response) and is logged.
    pub async fn handle_wasi_http(
        self: &Arc<Self>,
        request: http::Request<WasiBody>,
        trace: &Context,
        request_id: &str,
    ) -> Result<http::Response<WasiBody>, ApiError> {
        let span = self.call_span(trace, "plugin.call", Vec::new);
        let result = self.call_wasi_http(request, &span, request_id).await;
        self.call_ended(&span, result)
    }

    async fn call_wasi_http(
        self: &Arc<Self>,
        request: http::Request<WasiBody>,
        span: &Context,
        request_id: &str,
    ) -> Result<http::Response<WasiBody>, ApiError> {
        let internal = |e: wasmtime::Error| ApiError::Internal(format!("{e:#}"));
        let Admitted {
            permits,
            deadline,
            started,
            mut store,
        } = self.admit(request_id.to_string(), span).await?;
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let answered = Arc::new(AtomicBool::new(false));
        let (incoming, outparam) = {
            let mut http = store.data_mut().http();
            let incoming = http
                .new_incoming_request(Scheme::Http, request)
                .map_err(internal)?;
            let answered = answered.clone();
            let outparam = http
                .new_response_outparam_from_callback(move |response| {
                    answered.store(true, Ordering::Relaxed);
                    // The receiver is gone when the client left.
                    let _ = sender.send(response);
                })
                .map_err(internal)?;
            (incoming, outparam)
        };
        let plugin = self.clone();
        let task = tokio::spawn(async move {
            let _permits = permits;
            let outcome = plugin
                .run_incoming_handler(&mut store, deadline, started, incoming, outparam)
                .await;
            // Once the head is out nobody waits for this task: say here
            // why the body was cut.
            if let Err(err) = &outcome
                && answered.load(Ordering::Relaxed)
            {
                plugin.context.stats.fault(err.code());
                tracing::warn!(
                    plugin = %plugin.context.name,
                    request_id = %store.data().request_id,
                    error = %err,
                    "wasi:http component failed while its response streamed"
                );
            }
            outcome
        });
        self.response_of(receiver, task).await
    }

    /// Instantiates the component in `store` and calls its
    /// `incoming-handler` within `deadline`, recording the call's stats.
    async fn run_incoming_handler(
        &self,
        store: &mut Store<HostState>,
        deadline: Duration,
        started: Instant,
        incoming: Resource<HostIncomingRequest>,
        outparam: Resource<HostResponseOutparam>,
    ) -> Result<(), ApiError> {
        let mut instantiated = None;
        let call = async {
            let Some(indices) = &self.exports.wasi_http else {
                return Err(wasmtime::Error::msg(
                    "the plugin exports no wasi:http/incoming-handler",
                ));
            };
            let instance = self.pre.instantiate_async(&mut *store).await?;
            instantiated = Some(started.elapsed());
            let proxy = indices.load(&mut *store, &instance)?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut *store, incoming, outparam)
                .await
        };
        let outcome = tokio::time::timeout(deadline, call).await;
        self.context
            .stats
            .guest_call(instantiated, started.elapsed(), store.data().memory.peak);
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(self.fault(err, store)),
            Err(_elapsed) => Err(self.deadline_exceeded()),
        }
    }

    /// The response the guest set (its body under `max_response_body`), or
    /// why there is none: the error it answered with, or how the guest call
    /// (`task`) ended without setting one.
    async fn response_of(
        &self,
        receiver: Receiver<Result<http::Response<WasiBody>, ErrorCode>>,
        task: JoinHandle<Result<(), ApiError>>,
    ) -> Result<http::Response<WasiBody>, ApiError> {
        match receiver.await {
            Ok(Ok(response)) => {
                let limit = self.context.limits.max_response_body.as_u64();
                Ok(response.map(|body| limit_body(body, limit)))
            }
            Ok(Err(code)) => Err(ApiError::InvalidResponse {
                plugin: self.context.name.clone(),
                reason: format!("it answered with the wasi:http error {code:?}"),
            }),
            // The guest call ended without setting a response.
            Err(_) => match task.await {
                Ok(Ok(())) => Err(ApiError::InvalidResponse {
                    plugin: self.context.name.clone(),
                    reason: "it returned without setting a response".into(),
                }),
                Ok(Err(err)) => Err(err),
                Err(join) => Err(ApiError::Internal(format!("the guest call failed: {join}"))),
            },
        }
    }
}

/// `body`, ended with an error once it passes `limit` bytes.
fn limit_body(body: WasiBody, limit: u64) -> WasiBody {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    Limited::new(body, limit)
        .map_err(
            move |err| match err.downcast::<wasmtime_wasi_http::Error>() {
                Ok(err) => *err,
                // Past the limit: the rest is not sent.
                Err(_) => ErrorCode::HttpResponseBodySize(Some(limit as u64)).into(),
            },
        )
        .boxed_unsync()
}

/// A request body for a `wasi:http` guest: at most `limit` bytes (a longer
/// one ends with an error the guest sees on its stream).
pub fn request_body<B>(body: B, limit: u64) -> WasiBody
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    Limited::new(body, limit)
        .map_err(move |err| {
            if err.is::<http_body_util::LengthLimitError>() {
                wasmtime_wasi_http::Error::HttpRequestBodySize(Some(limit as u64))
            } else {
                wasmtime_wasi_http::Error::ConnectionTerminated
            }
        })
        .boxed_unsync()
}

//! One request in a fresh instance: take the permits, make a store with the
//! plugin's limits, instantiate from the pre-instantiated component, call
//! `handle`, and turn every way that can fail into an [`ApiError`].

use std::sync::Arc;
use std::time::Instant;

use opentelemetry::trace::{SpanKind, Status, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use tokio::sync::SemaphorePermit;
use wasmtime::{Store, Trap, UpdateDeadline};

use super::bindings::{GuestRequest, GuestResponse};
use super::state::{HostState, PluginContext};
use super::{LoadedPlugin, PluginHost};
use crate::backend::sql::{format_lsn, parse_lsn};
use crate::capability::sql::CONSISTENCY_HEADER;
use crate::error::ApiError;
use crate::monitor::child_span;

impl LoadedPlugin {
    /// Runs `request` in a fresh instance of this plugin.
    /// `trace` is the request's span; the call opens its own under it.
    pub async fn handle(
        &self,
        request: &GuestRequest,
        trace: &Context,
    ) -> Result<GuestResponse, ApiError> {
        let span = child_span(
            &self.context.tracer,
            trace,
            "plugin.call",
            SpanKind::Internal,
            vec![KeyValue::new("trellis.plugin", self.context.name.clone())],
        );
        let result = self.call(request, &span).await;
        if let Err(err) = &result {
            self.context.stats.fault(err.code());
            span.span().set_status(Status::error(err.code()));
        }
        result
    }

    async fn call(
        &self,
        request: &GuestRequest,
        span: &Context,
    ) -> Result<GuestResponse, ApiError> {
        let _permits = self.permits()?;
        let started = Instant::now();
        let mut store = new_store(
            &self.host,
            self.context.clone(),
            request.request_id.clone(),
            span.clone(),
        );
        store.data_mut().sql_seen.min_lsn = consistency_token(request);
        let mut instantiated = None;
        let call = async {
            let instantiating = child_span(
                &self.context.tracer,
                span,
                "plugin.instantiate",
                SpanKind::Internal,
                Vec::new(),
            );
            let instance = self.pre.instantiate_async(&mut store).await?;
            instantiating.span().end();
            instantiated = Some(started.elapsed());
            let handler = self.exports.http.load(&mut store, &instance)?;
            handler.call_handle(&mut store, request).await
        };
        let outcome = tokio::time::timeout(self.context.limits.deadline, call).await;
        self.context.stats.guest_call(
            instantiated.unwrap_or_default(),
            started.elapsed(),
            store.data().memory.peak,
        );
        match outcome {
            Ok(Ok(response)) => self.check(response).map(|r| self.annotate(r, &store)),
            Ok(Err(err)) => Err(self.fault(err, &store)),
            Err(_elapsed) => Err(self.deadline_exceeded()),
        }
    }

    /// A place in this plugin's and the host's instance budgets, or 503.
    fn permits(&self) -> Result<(SemaphorePermit<'_>, SemaphorePermit<'_>), ApiError> {
        let plugin = self
            .concurrency
            .try_acquire()
            .map_err(|_| ApiError::Overloaded {
                plugin: self.context.name.clone(),
                limit: self.context.limits.max_concurrency,
            })?;
        let host = self
            .host
            .instances
            .try_acquire()
            .map_err(|_| ApiError::Overloaded {
                plugin: self.context.name.clone(),
                limit: self.host.max_instances,
            })?;
        Ok((plugin, host))
    }

    fn check(&self, response: GuestResponse) -> Result<GuestResponse, ApiError> {
        let limit = self.context.limits.max_response_body.as_u64();
        let size = response.body.len() as u64;
        if size > limit {
            return Err(ApiError::ResponseTooLarge {
                plugin: self.context.name.clone(),
                size,
                limit,
            });
        }
        if !(200..=599).contains(&response.status) {
            return Err(ApiError::InvalidResponse {
                plugin: self.context.name.clone(),
                reason: format!("status {} is not a final HTTP status", response.status),
            });
        }
        Ok(response)
    }

    /// Adds the consistency token after writes, and diagnostic headers when
    /// `log.debug_headers` is on.
    fn annotate(&self, mut response: GuestResponse, store: &Store<HostState>) -> GuestResponse {
        let seen = &store.data().sql_seen;
        if seen.wrote
            && let Some(lsn) = seen.min_lsn
        {
            response
                .headers
                .push((CONSISTENCY_HEADER.into(), format_lsn(lsn)));
        }
        if self.context.sql_watch.debug_headers
            && let Some(shape) = &store.data().sql_seen.n_plus_one
        {
            let printable: String = shape
                .chars()
                .map(|c| {
                    if c.is_ascii_graphic() || c == ' ' {
                        c
                    } else {
                        '?'
                    }
                })
                .collect();
            response
                .headers
                .push(("x-trellis-n-plus-one".into(), printable));
        }
        response
    }

    fn fault(&self, err: wasmtime::Error, store: &Store<HostState>) -> ApiError {
        let plugin = self.context.name.clone();
        let state = store.data();
        if state.memory.exceeded {
            return ApiError::MemoryLimit {
                plugin,
                limit: self.context.limits.memory.as_u64(),
            };
        }
        let trap = err.downcast_ref::<Trap>();
        if trap == Some(&Trap::Interrupt) {
            return self.deadline_exceeded();
        }
        tracing::warn!(
            plugin = %plugin,
            request_id = %state.request_id,
            error = %format!("{err:#}"),
            guest_stderr = state.stderr_tail().unwrap_or_default(),
            "guest fault"
        );
        let reason = match trap {
            Some(trap) => format!("wasm trap: {trap}"),
            None => err.to_string(),
        };
        ApiError::GuestFault { plugin, reason }
    }

    fn deadline_exceeded(&self) -> ApiError {
        ApiError::DeadlineExceeded {
            plugin: self.context.name.clone(),
            deadline: self.context.limits.deadline,
        }
    }
}

/// The consistency token the client sent back, if any and well-formed.
fn consistency_token(request: &GuestRequest) -> Option<u64> {
    request
        .headers
        .iter()
        .find(|(name, _)| name == CONSISTENCY_HEADER)
        .and_then(|(_, value)| parse_lsn(value))
}

/// A store for one instance: memory limiter, and an epoch callback that
/// yields to tokio at every tick and interrupts the guest at its deadline.
pub(super) fn new_store(
    host: &PluginHost,
    context: Arc<PluginContext>,
    request_id: String,
    trace: Context,
) -> Store<HostState> {
    let deadline = Instant::now() + context.limits.deadline;
    let mut store = Store::new(&host.engine, HostState::new(context, request_id, trace));
    store.limiter(|state| &mut state.memory);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= deadline {
            Ok(UpdateDeadline::Interrupt)
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
    store
}

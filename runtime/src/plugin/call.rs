//! One request in a fresh instance: take the permits, make a store with the
//! plugin's limits, instantiate from the pre-instantiated component, call
//! `handle`, and turn every way that can fail into an [`ApiError`]. Also
//! the stores every guest call runs in (a job attempt's too, see `job`).
//!
//! Layer: `plugin`; it may call `capability` (the store state, the phases
//! around a call), `monitor` (spans, stats) and `error`, nothing above
//! `plugin`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use opentelemetry::trace::{SpanKind, Status, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use tokio::sync::OwnedSemaphorePermit;
use wasmtime::{Store, Trap, UpdateDeadline};

use super::warm::Warm;
use super::{LoadedPlugin, PluginHost};
use crate::capability::bindings::{GuestRequest, GuestResponse, http_handler};
use crate::capability::{Call, HostState, PluginContext};
use crate::error::ApiError;
use crate::monitor::child_span;

/// A request let in by [`LoadedPlugin::admit`]: hold `permits` for as long
/// as the instance lives.
pub(super) struct Admitted {
    pub(super) permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
    pub(super) deadline: Duration,
    pub(super) started: Instant,
    pub(super) store: Store<HostState>,
}

/// What a guest call runs: one request through `http-handler`, or many to
/// one route through `batch-handler`.
#[derive(Clone, Copy)]
enum Invocation<'a> {
    One(&'a GuestRequest),
    Many(&'a [GuestRequest]),
}

/// What it answered. Many answers are checked one by one.
enum Answer {
    One(GuestResponse),
    Many(Vec<Result<GuestResponse, ApiError>>),
}

impl LoadedPlugin {
    /// Runs `request` in a fresh instance of this plugin.
    /// `trace` is the request's span; the call opens its own under it.
    /// `extensions` are what the HTTP layer attached to the request, for
    /// the capabilities (e.g. an atomic batch's transaction).
    pub async fn handle(
        &self,
        request: &GuestRequest,
        trace: &Context,
        extensions: &http::Extensions,
    ) -> Result<GuestResponse, ApiError> {
        let span = self.call_span(trace, "plugin.call", Vec::new);
        let result = self
            .call(Invocation::One(request), &span, extensions)
            .await
            .and_then(|answer| match answer {
                Answer::One(response) => Ok(response),
                Answer::Many(_) => Err(ApiError::Internal("one request, many answers".into())),
            });
        self.call_ended(&span, result)
    }

    /// Runs `requests` (all to one route) in one instance through the
    /// plugin's `batch-handler`: one response per request, each checked as
    /// [`LoadedPlugin::handle`] checks one. The call has the plugin's
    /// deadline and memory limit once, for all of them.
    pub async fn handle_batch(
        &self,
        requests: &[GuestRequest],
        trace: &Context,
    ) -> Result<Vec<Result<GuestResponse, ApiError>>, ApiError> {
        let span = self.call_span(trace, "plugin.batch", || {
            vec![KeyValue::new("trellis.batch.size", requests.len() as i64)]
        });
        let result = self
            .call(Invocation::Many(requests), &span, &http::Extensions::new())
            .await;
        let result = match result {
            Ok(Answer::Many(responses)) if responses.len() == requests.len() => Ok(responses),
            Ok(Answer::Many(responses)) => Err(ApiError::InvalidResponse {
                plugin: self.context.name.clone(),
                reason: format!(
                    "batch-handler answered {} requests with {} responses",
                    requests.len(),
                    responses.len()
                ),
            }),
            Ok(Answer::One(_)) => Err(ApiError::Internal("many requests, one answer".into())),
            Err(err) => Err(err),
        };
        self.call_ended(&span, result)
    }

    /// The span of one guest call, under the request's `trace`: named
    /// `name`, with the plugin and `attributes`.
    pub(super) fn call_span(
        &self,
        trace: &Context,
        name: &'static str,
        attributes: impl FnOnce() -> Vec<KeyValue>,
    ) -> Context {
        child_span(
            &self.context.tracer,
            trace,
            name,
            SpanKind::Internal,
            || {
                let mut attributes = attributes();
                attributes.insert(
                    0,
                    KeyValue::new("trellis.plugin", self.context.name.clone()),
                );
                attributes
            },
        )
    }

    /// `result` of a guest call, a failure counted by its code and marked
    /// on the call's span.
    pub(super) fn call_ended<T>(
        &self,
        span: &Context,
        result: Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        if let Err(err) = &result {
            self.context.stats.fault(err.code());
            span.span().set_status(Status::error(err.code()));
        }
        result
    }

    /// Lets a request in: a place in the instance budgets (see
    /// [`LoadedPlugin::permits`]), the deadline less the time spent queued,
    /// and a fresh store for the call under `span`.
    pub(super) async fn admit(
        &self,
        request_id: String,
        span: &Context,
    ) -> Result<Admitted, ApiError> {
        let arrived = Instant::now();
        let permits = self.permits().await?;
        let deadline = self
            .context
            .limits
            .deadline
            .saturating_sub(arrived.elapsed());
        Ok(Admitted {
            permits,
            deadline,
            started: Instant::now(),
            store: new_store(&self.host, self.context.clone(), request_id, span.clone()),
        })
    }

    /// Runs `invocation` in an instance: a parked one of the plugin's warm
    /// pool for one request when it has one (see [`super::warm`]), else a
    /// fresh one; an instance of the pool that answered is parked again.
    async fn call(
        &self,
        invocation: Invocation<'_>,
        span: &Context,
        extensions: &http::Extensions,
    ) -> Result<Answer, ApiError> {
        let (first, pool) = match invocation {
            Invocation::One(request) => (Some(request), self.warm.as_ref()),
            Invocation::Many(requests) => (requests.first(), None),
        };
        let request_id = first.map(|r| r.request_id.clone()).unwrap_or_default();
        let arrived = Instant::now();
        let _permit = self.plugin_permit().await?;
        let deadline = self
            .context
            .limits
            .deadline
            .saturating_sub(arrived.elapsed());
        let started = Instant::now();
        let mut warm = match pool.and_then(|pool| pool.take()) {
            Some(mut warm) => {
                warm.renew(&self.host, request_id, span.clone(), deadline);
                self.context.stats.instance_reused();
                warm
            }
            None => {
                let instance = self.host_permit()?;
                let context = self.context.clone();
                let store = store_until(
                    &self.host,
                    context,
                    request_id,
                    span.clone(),
                    deadline,
                    None,
                );
                Warm::fresh(store, instance)
            }
        };
        let capabilities = &self.host.capabilities;
        let setup = Call {
            request: first,
            extensions,
        };
        capabilities
            .before_call(warm.store.data_mut(), &setup)
            .await;
        let mut instantiated = None;
        let call = self.invoke(&mut warm, invocation, span, started, &mut instantiated);
        let outcome = tokio::time::timeout(deadline, call).await;
        self.context.stats.guest_call(
            instantiated,
            started.elapsed(),
            warm.store.data().memory.peak,
        );
        let answered = matches!(outcome, Ok(Ok(_)));
        capabilities
            .after_call(warm.store.data_mut(), &setup, answered)
            .await;
        let answer = self.answer_of(outcome, &warm.store);
        // A guest stopped by a trap, its deadline or its memory limit may
        // have stopped anywhere: its instance is not used again.
        if let Some(pool) = pool
            && answered
            && !warm.store.data().memory.exceeded
        {
            warm.served += 1;
            pool.park(warm);
        }
        answer
    }

    /// Instantiates the plugin in `store` under a `plugin.instantiate`
    /// span; `instantiated` is set to the time from `started` it took.
    async fn instantiate(
        &self,
        store: &mut Store<HostState>,
        span: &Context,
        started: Instant,
        instantiated: &mut Option<Duration>,
    ) -> wasmtime::Result<wasmtime::component::Instance> {
        let instantiating = child_span(
            &self.context.tracer,
            span,
            "plugin.instantiate",
            SpanKind::Internal,
            Vec::new,
        );
        let instance = self.pre.instantiate_async(&mut *store).await?;
        instantiating.span().end();
        *instantiated = Some(started.elapsed());
        Ok(instance)
    }

    /// The `http-handler` export of `instance`.
    fn http_handler(
        &self,
        store: &mut Store<HostState>,
        instance: &wasmtime::component::Instance,
    ) -> wasmtime::Result<http_handler::Guest> {
        let Some(indices) = &self.exports.http else {
            return Err(wasmtime::Error::msg("the plugin exports no http-handler"));
        };
        indices.load(&mut *store, instance)
    }

    /// Calls the export `invocation` needs in `warm`, instantiating the
    /// plugin first unless `warm` already is (a parked instance);
    /// `instantiated` is set to the time from `started` instantiating took.
    async fn invoke(
        &self,
        warm: &mut Warm,
        invocation: Invocation<'_>,
        span: &Context,
        started: Instant,
        instantiated: &mut Option<Duration>,
    ) -> wasmtime::Result<Answer> {
        let store = &mut warm.store;
        match invocation {
            Invocation::One(request) => {
                let handler = match warm.handler.clone() {
                    Some(handler) => handler,
                    None => {
                        let instance = self.instantiate(store, span, started, instantiated).await?;
                        let handler = self.http_handler(store, &instance)?;
                        warm.handler = Some(handler.clone());
                        handler
                    }
                };
                handler.call_handle(store, request).await.map(Answer::One)
            }
            Invocation::Many(requests) => {
                let instance = self.instantiate(store, span, started, instantiated).await?;
                let Some(indices) = &self.exports.batch else {
                    return Err(wasmtime::Error::msg("the plugin exports no batch-handler"));
                };
                let handler = indices.load(&mut *store, &instance)?;
                handler
                    .call_handle_batch(store, requests)
                    .await
                    .map(|responses| Answer::Many(responses.into_iter().map(Ok).collect()))
            }
        }
    }

    /// What the caller gets of a guest call's `outcome`: its answers
    /// checked and annotated, or the fault or timeout as an [`ApiError`].
    fn answer_of(
        &self,
        outcome: Result<wasmtime::Result<Answer>, tokio::time::error::Elapsed>,
        store: &Store<HostState>,
    ) -> Result<Answer, ApiError> {
        match outcome {
            Ok(Ok(Answer::One(response))) => self
                .check(response)
                .map(|r| Answer::One(self.annotate(r, store))),
            Ok(Ok(Answer::Many(responses))) => Ok(Answer::Many(
                responses
                    .into_iter()
                    .map(|r| {
                        r.and_then(|r| self.check(r))
                            .map(|r| self.annotate(r, store))
                    })
                    .collect(),
            )),
            Ok(Err(err)) => Err(self.fault(err, store)),
            Err(_elapsed) => Err(self.deadline_exceeded()),
        }
    }

    /// A place in this plugin's and the host's instance budgets, or 503.
    /// When the plugin's instances are all busy, up to `max_queued` requests
    /// wait (within the deadline) for one to free; beyond, or past the
    /// deadline, the request is shed.
    pub(super) async fn permits(
        &self,
    ) -> Result<(OwnedSemaphorePermit, OwnedSemaphorePermit), ApiError> {
        let plugin = self.plugin_permit().await?;
        Ok((plugin, self.host_permit()?))
    }

    /// A place among this plugin's `max_concurrency`, waiting in its
    /// queue if there is room there; else 503.
    async fn plugin_permit(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        let limits = &self.context.limits;
        if let Ok(permit) = self.concurrency.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let overloaded = || self.overloaded(limits.max_concurrency);
        let _place = QueuePlace::take(&self.queued, limits.max_queued).ok_or_else(overloaded)?;
        let wait = self.concurrency.clone().acquire_owned();
        match tokio::time::timeout(limits.deadline, wait).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(overloaded()),
        }
    }

    /// A place in the host's instance budget (an instance slot), or 503.
    fn host_permit(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.host
            .instances
            .clone()
            .try_acquire_owned()
            .map_err(|_| self.overloaded(self.host.max_instances))
    }

    fn overloaded(&self, limit: u32) -> ApiError {
        ApiError::Overloaded {
            plugin: self.context.name.clone(),
            limit,
        }
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

    /// Adds what each capability adds to a response (headers after
    /// writes, diagnostics).
    fn annotate(&self, mut response: GuestResponse, store: &Store<HostState>) -> GuestResponse {
        self.host.capabilities.annotate(store.data(), &mut response);
        response
    }

    pub(super) fn fault(&self, err: wasmtime::Error, store: &Store<HostState>) -> ApiError {
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
            Some(trap) => trap.to_string(),
            None => err.to_string(),
        };
        ApiError::GuestFault { plugin, reason }
    }

    pub(super) fn deadline_exceeded(&self) -> ApiError {
        ApiError::DeadlineExceeded {
            plugin: self.context.name.clone(),
            deadline: self.context.limits.deadline,
        }
    }
}

/// A store for one instance: memory limiter, and an epoch callback that
/// yields to tokio at every tick and interrupts the guest at its deadline.
pub(super) fn new_store(
    host: &PluginHost,
    context: Arc<PluginContext>,
    request_id: String,
    trace: Context,
) -> Store<HostState> {
    let deadline = context.limits.deadline;
    store_until(host, context, request_id, trace, deadline, None)
}

/// As [`new_store`], with its own time budget, and interrupted as soon as
/// `cancel` is set (checked at every epoch tick).
pub(super) fn store_until(
    host: &PluginHost,
    context: Arc<PluginContext>,
    request_id: String,
    trace: Context,
    budget: Duration,
    cancel: Option<Arc<AtomicBool>>,
) -> Store<HostState> {
    let deadline = Instant::now() + budget;
    let busy = host.activity.begin();
    let state = HostState::new(
        &host.capabilities,
        context,
        request_id,
        trace,
        deadline,
        busy,
    );
    let mut store = Store::new(&host.engine, state);
    store.limiter(|state| &mut state.memory);
    store.set_epoch_deadline(1);
    // The deadline is read from the state: a warm instance gets a new one
    // for each request.
    store.epoch_deadline_callback(move |store| {
        let cancelled = cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed));
        if cancelled || Instant::now() >= store.data().deadline {
            Ok(UpdateDeadline::Interrupt)
        } else {
            // tokio's own yield goes behind every task ready to run and
            // lets the worker look at its sockets first, so a guest that
            // keeps computing takes turns with other plugins' requests.
            // (A plain `Yield` wakes the task at once: it ran again before
            // sockets were read, and a plugin looping on every core held
            // hello's requests for most of its deadline — p99 830 ms
            // beside it, 3 ms alone, in
            // `limits::a_looping_neighbour_barely_slows_another_plugin`.)
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(tokio::task::yield_now()),
            ))
        }
    });
    store
}

/// A place in a plugin's request queue, given back when dropped.
struct QueuePlace<'a>(&'a std::sync::atomic::AtomicU32);

impl<'a> QueuePlace<'a> {
    /// A place, unless `max` requests are already waiting.
    fn take(queued: &'a std::sync::atomic::AtomicU32, max: u32) -> Option<Self> {
        queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| QueuePlace(queued))
    }
}

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

//! One job attempt in a fresh instance: its span continues the trace of the
//! request that enqueued it; it waits for a place in the instance budgets,
//! runs `job-handler`'s `run` within the job's timeout (interrupted on
//! cancellation), and says how it ended as a [`JobOutcome`].
//!
//! Layer: `plugin`; it may call `capability` (the store state, the phases
//! around a call), `backend::jobs` (the job's stored form) and `monitor`,
//! nothing above `plugin`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use opentelemetry::trace::{SpanKind, Status, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use wasmtime::Store;

use super::LoadedPlugin;
use super::call::store_until;
use crate::capability::bindings::job_handler::{Job as GuestJob, JobError};
use crate::capability::{Call, HostState};
use crate::error::ApiError;

/// How a job attempt ended, as the worker sees it.
#[derive(Debug)]
pub enum JobOutcome {
    /// Success, with the result bytes.
    Completed(Vec<u8>),
    /// Failed (handler error, trap, timeout, memory): retry with backoff.
    Failed(String),
    /// Failed; retry after this delay.
    RetryIn(Duration, String),
    /// Failed for good.
    Fatal(String),
    /// Run again after this delay without spending the attempt.
    Snooze(Duration),
    /// Stopped by a cancellation.
    Cancelled,
}

impl LoadedPlugin {
    /// Runs one attempt of `job` in a fresh instance, within `timeout`,
    /// interrupted when `cancel` is set. Waits for a place in the
    /// plugin's and the host's instance budgets (workers bound how many
    /// wait). The span joins the trace of the request that enqueued it.
    pub async fn run_job(
        &self,
        job: &crate::backend::jobs::Job,
        timeout: Duration,
        cancel: Arc<AtomicBool>,
    ) -> JobOutcome {
        let Some(indices) = &self.exports.jobs else {
            return JobOutcome::Fatal("the plugin exports no job-handler".into());
        };
        let trace = self.job_trace(job);
        let (Ok(_plugin), Ok(_host)) = (
            self.concurrency.acquire().await,
            self.host.instances.acquire().await,
        ) else {
            return JobOutcome::Failed("the instance budget is closed".into());
        };
        let started = Instant::now();
        let mut store = store_until(
            &self.host,
            self.context.clone(),
            format!("job:{}", job.id),
            trace.clone(),
            timeout,
            Some(cancel.clone()),
        );
        let input = guest_job(job);
        let extensions = http::Extensions::new();
        let setup = Call {
            request: None,
            extensions: &extensions,
        };
        let capabilities = &self.host.capabilities;
        capabilities.before_call(store.data_mut(), &setup).await;
        let mut instantiated = None;
        let call = async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            instantiated = Some(started.elapsed());
            let handler = indices.load(&mut store, &instance)?;
            handler.call_run(&mut store, &input).await
        };
        let answer = tokio::time::timeout(timeout, call).await;
        self.context
            .stats
            .guest_call(instantiated, started.elapsed(), store.data().memory.peak);
        capabilities
            .after_call(store.data_mut(), &setup, matches!(answer, Ok(Ok(_))))
            .await;
        let outcome = self.job_outcome(answer, &store, timeout, &cancel);
        end_job_span(&trace, &outcome);
        outcome
    }

    /// The span of a job attempt, continuing the trace of the request that
    /// enqueued it.
    fn job_trace(&self, job: &crate::backend::jobs::Job) -> Context {
        crate::monitor::resume_trace(
            &self.context.tracer,
            job.trace.as_deref(),
            format!("job {}", job.kind),
            SpanKind::Consumer,
            vec![
                KeyValue::new("trellis.plugin", self.context.name.clone()),
                KeyValue::new("trellis.job.id", job.id.clone()),
                KeyValue::new("trellis.job.kind", job.kind.clone()),
                KeyValue::new("trellis.job.attempt", job.attempt),
            ],
        )
    }

    /// How the attempt ended, from the guest's `answer` (a cancellation
    /// wins over whatever it answered).
    fn job_outcome(
        &self,
        answer: Result<wasmtime::Result<Result<Vec<u8>, JobError>>, tokio::time::error::Elapsed>,
        store: &Store<HostState>,
        timeout: Duration,
        cancel: &AtomicBool,
    ) -> JobOutcome {
        match answer {
            _ if cancel.load(Ordering::Relaxed) => JobOutcome::Cancelled,
            Ok(Ok(Ok(result))) => JobOutcome::Completed(result),
            Ok(Ok(Err(JobError::Failed(message)))) => JobOutcome::Failed(message),
            Ok(Ok(Err(JobError::RetryIn(retry)))) => {
                JobOutcome::RetryIn(Duration::from_millis(retry.delay_ms), retry.message)
            }
            Ok(Ok(Err(JobError::Fatal(message)))) => JobOutcome::Fatal(message),
            Ok(Ok(Err(JobError::Snooze(ms)))) => JobOutcome::Snooze(Duration::from_millis(ms)),
            Ok(Err(err)) => {
                let fault = self.fault(err, store);
                if matches!(fault, ApiError::DeadlineExceeded { .. }) {
                    JobOutcome::Failed(format!(
                        "timed out after {}",
                        humantime::format_duration(timeout)
                    ))
                } else {
                    JobOutcome::Failed(fault.to_string())
                }
            }
            Err(_elapsed) => JobOutcome::Failed(format!(
                "timed out after {}",
                humantime::format_duration(timeout)
            )),
        }
    }
}

/// The job as the guest's `job-handler` receives it.
fn guest_job(job: &crate::backend::jobs::Job) -> GuestJob {
    GuestJob {
        id: job.id.clone(),
        kind: job.kind.clone(),
        payload: job.payload.clone(),
        attempt: u32::try_from(job.attempt).unwrap_or(u32::MAX),
        max_attempts: u32::try_from(job.max_attempts).unwrap_or(u32::MAX),
        idempotency_key: job.idempotency_key.clone(),
        enqueued_at: u64::try_from(job.created_at).unwrap_or_default(),
    }
}

/// Ends a job attempt's span with its outcome (an error unless it
/// completed or snoozed).
fn end_job_span(trace: &Context, outcome: &JobOutcome) {
    let span = trace.span();
    span.set_attribute(KeyValue::new("trellis.job.outcome", outcome.name()));
    if !matches!(outcome, JobOutcome::Completed(_) | JobOutcome::Snooze(_)) {
        span.set_status(Status::error(outcome.name()));
    }
    span.end();
}

impl JobOutcome {
    /// A short name, for spans and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            JobOutcome::Completed(_) => "completed",
            JobOutcome::Failed(_) => "failed",
            JobOutcome::RetryIn(..) => "retry",
            JobOutcome::Fatal(_) => "fatal",
            JobOutcome::Snooze(_) => "snoozed",
            JobOutcome::Cancelled => "cancelled",
        }
    }
}

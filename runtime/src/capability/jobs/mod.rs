//! `trellis:plugin/jobs`: enqueueing jobs of the plugin's own kinds
//! ([`queue`]). The enqueue span's context is stored with the job, so
//! the job's run continues the request's trace.

pub mod kinds;
pub mod queue;

use std::sync::Arc;

use opentelemetry::KeyValue;
use wasmtime::component::{HasSelf, Linker, Resource};

use self::queue::{EnqueueError, EnqueueOptions as Options, JobKinds, KindSpec};
use super::bindings::jobs::{self, EnqueueOptions, Error, Host};
use super::sql::{SqlTransaction, tx_of};
use super::{Capability, HostState, PluginContext, PluginSetup, Runtime, end_span};
use crate::backend::jobs::NewJob;
use crate::config::Limits;

/// The `jobs` capability, over the node's job queue.
#[derive(Debug)]
pub struct Jobs {
    queue: queue::Jobs,
}

/// A plugin's view of the job queue.
#[derive(Debug, Clone)]
pub struct PluginJobs {
    /// The queue.
    pub queue: queue::Jobs,
    /// The kinds it declares.
    pub kinds: Arc<JobKinds>,
}

/// Jobs enqueued in this call (bounded by `limits.max_enqueue`).
#[derive(Debug, Default)]
pub struct Enqueued(u32);

impl Capability for Jobs {
    const NAME: &'static str = "jobs";
    /// `None` unless the plugin exports `job-handler` or imports `jobs`.
    type Plugin = Option<PluginJobs>;
    type Instance = Enqueued;

    async fn start(runtime: &Runtime<'_>) -> Result<Self, String> {
        let store = runtime
            .backends
            .sql
            .job_store(runtime.config.jobs.connections)
            .await
            .map_err(|e| format!("cannot start the sql backend: {e}"))?;
        Ok(Jobs {
            queue: queue::Jobs::new(store, runtime.config.jobs.clone()),
        })
    }

    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        jobs::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)
    }

    async fn configure(&self, plugin: &PluginSetup<'_>) -> Result<Option<PluginJobs>, String> {
        let handles = plugin.jobs.is_some();
        let kinds = kinds::check(self.queue.config(), plugin.jobs.clone(), plugin.schedules)
            .map_err(|e| format!("invalid job kinds: {e}"))?;
        Ok(
            (handles || plugin.imports.contains(&Self::NAME)).then(|| PluginJobs {
                queue: self.queue.clone(),
                kinds: Arc::new(kinds),
            }),
        )
    }

    fn unconfigured(&self, _plugin: &PluginSetup<'_>) -> Option<PluginJobs> {
        None
    }

    fn prepare(&self, _plugin: &Option<PluginJobs>, _limits: &Limits) -> Enqueued {
        Enqueued::default()
    }
}

impl Jobs {
    /// The queue.
    pub fn queue(&self) -> &queue::Jobs {
        &self.queue
    }
}

impl PluginContext {
    /// Its job kinds and schedules, when it exports `job-handler`.
    pub fn job_kinds(&self) -> Option<&Arc<JobKinds>> {
        self.capabilities.jobs.as_ref().map(|j| &j.kinds)
    }

    /// One of its job kinds.
    pub fn job_kind(&self, kind: &str) -> Option<&KindSpec> {
        self.job_kinds()?.kinds.get(kind)
    }
}

fn to_wit(err: EnqueueError) -> Error {
    match err {
        EnqueueError::UnknownKind { kind, .. } => Error::UnknownKind(kind),
        EnqueueError::TooLarge { limit, .. } => Error::TooLarge(limit),
        EnqueueError::Invalid(m) => Error::Invalid(m),
        EnqueueError::Unavailable(m) => Error::Unavailable(m),
    }
}

fn options(raw: EnqueueOptions) -> Options {
    Options {
        delay_ms: raw.delay_ms,
        priority: raw.priority,
        queue: raw.queue,
        max_attempts: raw.max_attempts,
        idempotency_key: raw.idempotency_key,
    }
}

impl HostState {
    /// The job, checked, with the enqueue span open (its context is the
    /// job's trace parent).
    fn prepare_job(
        &mut self,
        kind: &str,
        payload: Vec<u8>,
        raw: EnqueueOptions,
    ) -> (Option<opentelemetry::Context>, Result<NewJob, EnqueueError>) {
        let span = self.host_span("jobs.enqueue", || {
            vec![KeyValue::new("trellis.job.kind", kind.to_string())]
        });
        let Some(jobs) = &self.plugin.capabilities.jobs else {
            return (
                span,
                Err(EnqueueError::Invalid(format!(
                    "plugin `{}` has no job queue: grant it `jobs`",
                    self.plugin.name
                ))),
            );
        };
        let limit = self.plugin.limits.max_enqueue;
        if self.instance.jobs.0 >= limit {
            return (
                span,
                Err(EnqueueError::Invalid(format!(
                    "more than {limit} jobs enqueued in one call (limits.max_enqueue)"
                ))),
            );
        }
        self.instance.jobs.0 += 1;
        let trace = span
            .as_ref()
            .and_then(crate::monitor::traceparent)
            .or_else(|| crate::monitor::traceparent(&self.trace));
        let job = jobs.queue.prepare(
            &self.plugin.name,
            &jobs.kinds,
            kind,
            payload,
            options(raw),
            trace,
        );
        (span, job)
    }
}

/// Moves jobs a committed SQLite transaction left in the outbox into the
/// queue. On failure they stay there; the leader retries.
pub(crate) async fn forward_outbox(plugin: Arc<PluginContext>) {
    if let (Some(jobs), Some(db)) = (&plugin.capabilities.jobs, &plugin.capabilities.sql.db)
        && let Err(err) = jobs.queue.forward_outbox(db).await
    {
        tracing::warn!(plugin = %plugin.name, %err, "job outbox not forwarded yet; the leader retries");
    }
}

async fn insert_job(plugin: Arc<PluginContext>, job: NewJob) -> Result<String, EnqueueError> {
    let Some(jobs) = &plugin.capabilities.jobs else {
        return Err(EnqueueError::Invalid("no job queue".into()));
    };
    let mut ids = jobs.queue.insert(std::slice::from_ref(&job)).await?;
    Ok(ids.pop().unwrap_or(job.id))
}

impl HostState {
    /// Enqueues `job` in the guest's transaction `tx`, or (`None`) in the
    /// atomic batch's: it is queued when that transaction commits.
    async fn insert_job_in(
        &mut self,
        tx: Option<&Resource<SqlTransaction>>,
        job: NewJob,
    ) -> Result<String, EnqueueError> {
        let Some(jobs) = self.plugin.capabilities.jobs.clone() else {
            return Err(EnqueueError::Invalid("no job queue".into()));
        };
        let on_sqlite = jobs.queue.store().engine() == "sqlite";
        // SQLite checks the key now; the outbox is forwarded after commit.
        if on_sqlite
            && let Some(key) = &job.idempotency_key
            && let Some(id) = jobs.queue.store().holder(&job.plugin, key).await?
        {
            return Ok(id);
        }
        let inner = match tx {
            Some(tx) => tx_of(&mut self.table, &mut self.instance.sql.ambient, tx)
                .map_err(|e| EnqueueError::Invalid(e.to_string()))?,
            None => self
                .instance
                .sql
                .ambient
                .as_mut()
                .and_then(|a| a.tx.as_mut()),
        };
        let Some(inner) = inner else {
            return Err(EnqueueError::Invalid(
                "the transaction is already finished".into(),
            ));
        };
        let id = inner.enqueue(&job).await?;
        // The commit that queues it forwards the outbox: the guest's own
        // transaction's, or the batch's (a savepoint's is the batch's).
        match tx.and_then(|tx| self.table.get_mut(tx).ok()) {
            Some(transaction) if transaction.tx.is_some() => transaction.enqueued = true,
            _ => {
                if let Some(ambient) = self.instance.sql.ambient.as_mut() {
                    ambient.enqueued = true;
                }
            }
        }
        Ok(id)
    }
}

impl Host for HostState {
    async fn enqueue(
        &mut self,
        kind: String,
        payload: Vec<u8>,
        options: EnqueueOptions,
    ) -> wasmtime::Result<Result<String, Error>> {
        let (span, job) = self.prepare_job(&kind, payload, options);
        let result = match job {
            // Inside an atomic batch it rolls back with the batch.
            Ok(job) if self.instance.sql.ambient.is_some() => self.insert_job_in(None, job).await,
            Ok(job) => insert_job(self.plugin.clone(), job).await,
            Err(err) => Err(err),
        };
        end_span(
            span,
            result.as_ref().err().map(ToString::to_string).as_deref(),
        );
        Ok(result.map_err(to_wit))
    }

    async fn enqueue_in(
        &mut self,
        tx: Resource<SqlTransaction>,
        kind: String,
        payload: Vec<u8>,
        options: EnqueueOptions,
    ) -> wasmtime::Result<Result<String, Error>> {
        let (span, job) = self.prepare_job(&kind, payload, options);
        let result = match job {
            Ok(job) => self.insert_job_in(Some(&tx), job).await,
            Err(err) => Err(err),
        };
        end_span(
            span,
            result.as_ref().err().map(ToString::to_string).as_deref(),
        );
        Ok(result.map_err(to_wit))
    }
}

//! The plugin host (wasmtime component model).
//!
//! Layer: below `router`, above `capability`. [`PluginHost`] owns the one
//! engine and linker; [`PluginHost::load`] turns a component into a
//! [`LoadedPlugin`] (compiled, checked against its grants, pre-instantiated,
//! manifest read); [`LoadedPlugin::handle`] runs one request in a fresh
//! instance under the plugin's limits.

mod call;
pub mod engine;
mod job;
mod load;
mod manifest;
mod warm;
pub use manifest::ANY_METHOD;
pub mod route_options;
pub mod wasi_http;

use std::sync::Arc;

use tokio::sync::Semaphore;
use wasmtime::Engine;
use wasmtime::component::{InstancePre, Linker};

use crate::backend::cache::CacheService;
use crate::backend::lock::LockService;
use crate::backend::sql::{SqlError, SqlService};
use crate::backend::{BackendError, Backends};
use crate::capability::{Capabilities, HostState, PluginContext, Runtime};
use crate::config::{Config, Limits};
use crate::monitor::{ErrorGroups, HostSnapshot, Metrics, ResponseCacheStats, RouteStats, Tracing};

pub use crate::capability::bindings::{GuestRequest, GuestResponse, PluginManifest, Route};
pub use job::JobOutcome;
pub use load::{LoadError, LoadErrorKind, WORLD_VERSION, read_component};
pub use route_options::{RouteCache, RouteOptions};

/// The engine, the linker with every host import, and the global instance
/// budget. Cheap to clone.
#[derive(Clone)]
pub struct PluginHost {
    engine: Engine,
    linker: Arc<Linker<HostState>>,
    /// Instances alive at once across all plugins: the pooling allocator's
    /// size, enforced here so a full pool is back-pressure (503), not an
    /// instantiation error.
    instances: Arc<Semaphore>,
    max_instances: u32,
    compile_cache: Option<wasmtime::Cache>,
    /// The node's storage engines.
    backends: Backends,
    /// Every capability's service.
    capabilities: Arc<Capabilities>,
    /// The server's metrics; plugins and routes get their handles here.
    metrics: Arc<Metrics>,
    /// The server's tracer and trace store.
    tracing: Arc<Tracing>,
    /// Failures grouped by fingerprint.
    errors: Arc<ErrorGroups>,
    /// Guests running (stores alive): the epoch ticker ticks while there is one.
    activity: Arc<crate::clock::Activity>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("max_instances", &self.max_instances)
            .finish_non_exhaustive()
    }
}

/// A plugin ready to serve: compiled, pre-instantiated, manifest read.
pub struct LoadedPlugin {
    context: Arc<PluginContext>,
    manifest: PluginManifest,
    hash: String,
    pre: InstancePre<HostState>,
    exports: Exports,
    concurrency: Arc<Semaphore>,
    /// Requests waiting for a place in `concurrency`.
    queued: std::sync::atomic::AtomicU32,
    /// Metric handles per route, in manifest order.
    routes: Vec<RouteStats>,
    /// Response caching per route, in manifest order.
    response_caches: Vec<Option<(RouteCache, ResponseCacheStats)>>,
    /// What each route declares, in manifest order.
    options: Vec<RouteOptions>,
    /// The path prefix a `wasi:http` component serves under.
    mount: Option<String>,
    /// Its parked instances, with `reuse` above 1 (see [`warm`]).
    warm: Option<Arc<warm::WarmPool>>,
    host: PluginHost,
}

/// Where each export interface lives in the component, looked up once.
/// Optional interfaces are `None` when the plugin does not export them, so
/// plugins built before an interface existed keep loading.
/// A `wasi:http` component exports `wasi:http/incoming-handler` and none of
/// ours.
pub(crate) struct Exports {
    pub(crate) manifest: Option<crate::capability::bindings::manifest::GuestIndices>,
    pub(crate) http: Option<crate::capability::bindings::http_handler::GuestIndices>,
    pub(crate) wasi_http: Option<wasmtime_wasi_http::p2::bindings::ProxyIndices>,
    pub(crate) migrations: Option<crate::capability::bindings::migrations::GuestIndices>,
    pub(crate) jobs: Option<crate::capability::bindings::job_handler::GuestIndices>,
    pub(crate) batch: Option<crate::capability::bindings::batch_handler::GuestIndices>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.context.name)
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

impl PluginHost {
    /// The engine and linker for `config`, and the SQL backend: the pool is
    /// sized for the largest memory cap any configured plugin has.
    pub async fn new(config: &Config) -> Result<PluginHost, HostError> {
        let max_memory = config
            .plugins()
            .values()
            .map(|p| config.limits.with(&p.limits).memory.as_u64())
            .chain([config.limits.memory.as_u64()])
            .max()
            .unwrap_or(config.limits.memory.as_u64());
        let cache_dir = config.cache_dir();
        let engine_error = |e: wasmtime::Error| HostError::Engine(format!("{e:#}"));
        let (engine, compile_cache) =
            engine::build(&config.engine, max_memory, cache_dir.as_deref())
                .map_err(engine_error)?;
        let activity = Arc::new(crate::clock::Activity::default());
        engine::start_epoch_ticker(&engine, config.engine.epoch_tick, activity.clone())
            .map_err(|e| HostError::Engine(format!("cannot start the epoch ticker: {e}")))?;

        let mut linker = Linker::new(&engine);
        Capabilities::link(&mut linker).map_err(engine_error)?;

        let max_instances = config.engine.max_instances;
        let tracing = Tracing::new(&config.telemetry).map_err(HostError::Telemetry)?;
        let metrics = Arc::new(Metrics::new());
        let backends = Backends::start(config, &metrics)
            .await
            .map_err(HostError::Backend)?;
        let capabilities = Capabilities::start(&Runtime {
            config,
            backends: &backends,
        })
        .await
        .map_err(HostError::Capability)?;
        Ok(PluginHost {
            tracing: Arc::new(tracing),
            errors: Arc::default(),
            engine,
            linker: Arc::new(linker),
            instances: Arc::new(Semaphore::new(max_instances as usize)),
            max_instances,
            compile_cache,
            backends,
            capabilities: Arc::new(capabilities),
            metrics,
            activity,
        })
    }

    /// The node's storage engines.
    pub fn backends(&self) -> &Backends {
        &self.backends
    }

    /// Every capability's service.
    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// The two-tier cache.
    pub fn cache(&self) -> &CacheService {
        &self.backends.cache
    }

    /// Leases.
    pub fn locks(&self) -> &LockService {
        &self.backends.locks
    }

    /// The server's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The server's tracing.
    pub fn tracing(&self) -> &Arc<Tracing> {
        &self.tracing
    }

    /// Failures grouped by fingerprint.
    pub fn errors(&self) -> &Arc<ErrorGroups> {
        &self.errors
    }

    /// What the host's gauges read now.
    pub fn snapshot(&self) -> HostSnapshot {
        let backends = &self.backends;
        let (replica_reads, replicas) = backends.sql.replica_stats();
        HostSnapshot {
            instances_in_use: i64::from(self.max_instances)
                - self.instances.available_permits() as i64,
            query_cache: backends.query_cache.stats(),
            replica_reads,
            replicas,
            cache_l1_bytes: backends.cache.l1_usage().1,
            redis_up: backends.cache.redis_state(),
        }
    }

    /// The SQL backend (plugin databases, cluster roles).
    pub fn sql(&self) -> &SqlService {
        &self.backends.sql
    }

    /// Whether the database answers, and how fast.
    pub async fn check_database(&self) -> Result<std::time::Duration, SqlError> {
        self.backends.sql.ping().await
    }

    /// Compile cache (hits, misses) so far, when the cache is on.
    pub fn compile_cache_stats(&self) -> Option<(usize, usize)> {
        self.compile_cache
            .as_ref()
            .map(|c| (c.cache_hits(), c.cache_misses()))
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

/// Why the plugin host did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The WebAssembly engine could not be built.
    #[error("cannot start the WebAssembly engine: {0}")]
    Engine(String),
    /// A backend (SQL, Redis) could not be started.
    #[error("{0}")]
    Backend(BackendError),
    /// A capability's service could not be started.
    #[error("{0}")]
    Capability(String),
    /// Trace export could not be set up.
    #[error("cannot start telemetry: {0}")]
    Telemetry(String),
}

impl LoadedPlugin {
    /// The operator's name for the plugin.
    pub fn name(&self) -> &str {
        &self.context.name
    }

    /// The path prefix it serves under, when it is a `wasi:http`
    /// component (its manifest is made by the host: every method on the
    /// prefix and below it).
    pub fn mount(&self) -> Option<&str> {
        self.mount.as_deref()
    }

    /// The manifest the plugin declared.
    pub fn manifest(&self) -> &PluginManifest {
        &self.manifest
    }

    /// The plugin's limits.
    pub fn limits(&self) -> &Limits {
        &self.context.limits
    }

    /// Its context: name, limits, and each capability's state for it.
    pub fn context(&self) -> &Arc<PluginContext> {
        &self.context
    }

    /// SHA-256 of the component bytes, hex.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// How route `index` caches its responses, if it does.
    pub fn response_cache(&self, index: u32) -> Option<&(RouteCache, ResponseCacheStats)> {
        self.response_caches.get(index as usize)?.as_ref()
    }

    /// Whether route `index` skips unknown fields in `?fields=`.
    pub fn lenient_fields(&self, index: u32) -> bool {
        self.options
            .get(index as usize)
            .is_some_and(|o| o.lenient_fields)
    }

    /// Whether route `index` serves many requests in one call (its manifest
    /// sets `batch` and the plugin exports `batch-handler`).
    pub fn batches(&self, index: u32) -> bool {
        self.exports.batch.is_some() && self.options.get(index as usize).is_some_and(|o| o.batch)
    }

    /// The JSON Schemas route `index` declares for its request and its 2xx
    /// response bodies.
    pub fn schemas(&self, index: u32) -> (Option<&serde_json::Value>, Option<&serde_json::Value>) {
        match self.options.get(index as usize) {
            Some(o) => (o.request_schema.as_ref(), o.response_schema.as_ref()),
            None => (None, None),
        }
    }

    /// Records one job attempt in the plugin's metrics.
    pub fn job_stats(
        &self,
        job: &crate::backend::jobs::Job,
        outcome: &str,
        elapsed: std::time::Duration,
    ) {
        let pickup = job.attempted_at.map(|at| {
            std::time::Duration::from_millis(u64::try_from(at - job.run_at).unwrap_or(0))
        });
        self.context.stats.job(&job.kind, outcome, pickup, elapsed);
    }

    /// The metric handles of route `index` (manifest order).
    pub fn route_stats(&self, index: u32) -> Option<&RouteStats> {
        self.routes.get(index as usize)
    }
}

//! What one instance can reach: its plugin's context, the request id, a WASI
//! context with nothing granted but clocks, random and a captured stderr,
//! and the memory limiter.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::{MemoryOutputPipe, SinkOutputStream};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use crate::backend::cache::CacheService;
use crate::backend::lock::LockService;
use crate::backend::sql::{PluginDb, QueryCache};
use crate::config::Limits;
use crate::monitor::PluginStats;

/// Bytes of guest stderr kept per call (panic messages land there).
const STDERR_CAPACITY: usize = 16 * 1024;

/// Per-plugin data shared by all its instances.
#[derive(Debug, Clone)]
pub struct PluginContext {
    /// The operator's name for the plugin.
    pub name: String,
    /// Settings from `[plugins.<name>.config]`.
    pub settings: BTreeMap<String, String>,
    /// The plugin's limits.
    pub limits: Limits,
    /// Its database, when granted `sql`.
    pub sql: Option<PluginDb>,
    /// How its SQL is watched: slow queries, N+1 patterns.
    pub sql_watch: SqlWatch,
    /// The query result cache (shared by all plugins, keyed by plugin).
    pub query_cache: Arc<QueryCache>,
    /// The two-tier cache (keys namespaced by `name`).
    pub cache: CacheService,
    /// Leases (names scoped by `name`).
    pub locks: LockService,
    /// Its metric handles.
    pub stats: PluginStats,
    /// The server's tracer, for spans of host calls.
    pub tracer: opentelemetry_sdk::trace::SdkTracer,
    /// Where host-call failures are grouped.
    pub errors: Arc<crate::monitor::ErrorGroups>,
    /// The job queue and this plugin's kinds (when it exports
    /// `job-handler` or is granted `jobs`).
    pub jobs: Option<PluginJobs>,
}

/// A plugin's view of the job queue.
#[derive(Debug, Clone)]
pub struct PluginJobs {
    /// The queue.
    pub queue: crate::jobs::Jobs,
    /// The kinds it declares.
    pub kinds: Arc<crate::jobs::JobKinds>,
}

/// Thresholds for SQL diagnostics (from `[sql]` and `[log]`).
#[derive(Debug, Clone, Copy)]
pub struct SqlWatch {
    /// Statements slower than this are logged with their plan.
    pub slow_query: std::time::Duration,
    /// Repeats of one shape in one request that count as N+1.
    pub n_plus_one_threshold: u32,
    /// Report N+1 in a response header.
    pub debug_headers: bool,
}

/// Per-instance SQL bookkeeping: statements by shape, the N+1 found, and
/// the consistency position reads must see (the client's token, raised by
/// this request's own writes).
#[derive(Debug, Default)]
pub(crate) struct SqlSeen {
    pub(crate) shapes: std::collections::HashMap<String, u32>,
    pub(crate) n_plus_one: Option<String>,
    pub(crate) min_lsn: Option<u64>,
    pub(crate) wrote: bool,
}

/// The `T` of `Store<T>`: one per instance, dropped with it.
#[allow(missing_debug_implementations)]
pub struct HostState {
    pub(crate) plugin: Arc<PluginContext>,
    pub(crate) request_id: String,
    pub(crate) memory: MemoryLimiter,
    pub(crate) stderr: MemoryOutputPipe,
    pub(crate) table: ResourceTable,
    pub(crate) sql_seen: SqlSeen,
    /// The span of the guest call: host calls open their spans under it.
    pub(crate) trace: opentelemetry::Context,
    /// Guest spans opened in this call.
    pub(crate) spans_opened: u32,
    /// Jobs enqueued in this call (bounded by `limits.max_enqueue`).
    pub(crate) jobs_enqueued: u32,
    /// Inside an atomic batch: its transaction, which every statement of
    /// this call runs in.
    pub(crate) ambient: Option<crate::capability::sql::Ambient>,
    wasi: WasiCtx,
    /// `wasi:http` state, used by `wasi:http/incoming-handler` components.
    http: WasiHttpCtx,
    http_hooks: NoOutgoingHttp,
}

impl HostState {
    pub(crate) fn new(
        plugin: Arc<PluginContext>,
        request_id: String,
        trace: opentelemetry::Context,
    ) -> Self {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let wasi = WasiCtx::builder()
            .stdout(SinkOutputStream)
            .stderr(stderr.clone())
            .build();
        let memory = MemoryLimiter::new(plugin.limits.memory.as_u64());
        HostState {
            plugin,
            request_id,
            memory,
            stderr,
            wasi,
            http: WasiHttpCtx::new(),
            http_hooks: NoOutgoingHttp,
            table: ResourceTable::new(),
            sql_seen: SqlSeen::default(),
            trace,
            spans_opened: 0,
            jobs_enqueued: 0,
            ambient: None,
        }
    }

    /// The last line the guest wrote to stderr, e.g. a panic message.
    pub(crate) fn stderr_tail(&self) -> Option<String> {
        let bytes = self.stderr.contents();
        let text = String::from_utf8_lossy(&bytes);
        let tail = text.trim_end().rsplit('\n').next()?.trim();
        (!tail.is_empty()).then(|| tail.to_string())
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

/// Plugins make no outgoing HTTP requests: `wasi:http/outgoing-handler`
/// links (a `wasi:http` component imports it) but every request is
/// denied.
struct NoOutgoingHttp;

impl WasiHttpHooks for NoOutgoingHttp {
    fn send_request(
        &mut self,
        _request: http::Request<WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<WasiBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}

/// Caps linear memory growth and remembers that it did, so a failed call can
/// be reported as a memory limit rather than a generic trap.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    limit: usize,
    pub(crate) exceeded: bool,
    /// The largest size memory was allowed to grow to.
    pub(crate) peak: usize,
}

impl MemoryLimiter {
    fn new(limit: u64) -> Self {
        MemoryLimiter {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            exceeded: false,
            peak: 0,
        }
    }
}

/// Table elements an instance may grow to.
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.exceeded = true;
            return Ok(false);
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

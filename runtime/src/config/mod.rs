//! Configuration: `trellis.toml` plus `TRELLIS_*` environment overrides,
//! validated strictly before anything starts.
//!
//! The bottom layer: it imports nothing from the crate but the embedded
//! examples, and the checks its sections need live beside them
//! ([`alert_rule`], [`jobs`], [`paths`]). Every key has a
//! default in code (see [`Config::default`]), unknown keys are errors, and an
//! error names the key, and the line where the file has one.
//!
//! Environment overrides: `TRELLIS_<KEY>` with `__` between nesting levels,
//! e.g. `TRELLIS_SERVER__LISTEN=127.0.0.1:9000` or
//! `TRELLIS_LIMITS__DEADLINE=2s`. A value that parses as a TOML value
//! (number, boolean, quoted string) is taken as such; anything else as a
//! string. `TRELLIS_CONFIG` (the config path), `TRELLIS_ROLE` and `TRELLIS_LOG` (a log
//! filter) are not overrides.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

use crate::examples;

pub mod alert_rule;
pub mod jobs;
pub mod paths;

/// Environment variables with the `TRELLIS_` prefix that are not overrides.
const NOT_OVERRIDES: &[&str] = &["TRELLIS_CONFIG", "TRELLIS_LOG", "TRELLIS_ROLE"];

/// Capabilities a plugin may be granted.
pub const CAPABILITIES: &[&str] = &["log", "config", "sql", "cache", "lock", "jobs"];

/// A configuration error: what is wrong and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the schema; the message
    /// carries the line, column and key.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, with line and key.
        message: String,
    },
    /// An environment override does not fit the schema.
    #[error("invalid environment override ({key}): {message}")]
    Env {
        /// The config key the overrides touched, as a dotted path.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A value is well-formed but not acceptable.
    #[error("invalid config value `{key}`: {message}")]
    Invalid {
        /// The dotted key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where runtime state lives (compile cache, later databases).
    pub data_dir: PathBuf,
    /// The HTTP server.
    pub server: ServerConfig,
    /// Logging.
    pub log: LogConfig,
    /// The WebAssembly engine.
    pub engine: EngineConfig,
    /// Default limits of every plugin; `[plugins.<name>.limits]` overrides.
    pub limits: Limits,
    /// The `sql` capability's backend and pools.
    pub sql: SqlConfig,
    /// Admin authentication for `/admin/*` and the monitoring API.
    pub admin: AdminConfig,
    /// Tracing: sampling, OTLP export, the local trace store.
    pub telemetry: TelemetryConfig,
    /// Alert rules and where notifications go.
    pub alerts: AlertsConfig,
    /// Redis, shared by every node: the cache's second tier and its
    /// invalidations, and locks. Absent: both stay in process.
    pub redis: Option<RedisConfig>,
    /// The `cache` capability and the HTTP response cache.
    pub cache: CacheConfig,
    /// The `lock` capability.
    pub lock: LockConfig,
    /// Response compression.
    pub compression: CompressionConfig,
    /// `POST /api/v1/batch`.
    pub batch: BatchConfig,
    /// The job queue, its workers and the scheduler.
    pub jobs: JobsConfig,
    /// Hot reload: file watching, uploads, what nodes share.
    pub deploy: DeployConfig,
    /// The plugins to serve, by name. Absent: the embedded examples.
    pub plugins: Option<BTreeMap<String, PluginConfig>>,
}

/// `[redis]`: the Redis every node shares.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// Prefix of every key and channel, so deployments can share a Redis.
    #[serde(default = "default_redis_namespace")]
    pub namespace: String,
    /// A command that takes longer fails (the cache then degrades, a lock
    /// call reports `unavailable`).
    #[serde(default = "default_redis_timeout", with = "humantime_serde")]
    pub command_timeout: Duration,
    /// `/readyz` answers 503 while Redis does not answer. `false`: the node
    /// stays ready and serves degraded (cache in process, locks
    /// unavailable), which keeps a cluster serving when its Redis is down.
    #[serde(default = "default_redis_required")]
    pub required: bool,
}

fn default_redis_required() -> bool {
    true
}

fn default_redis_namespace() -> String {
    "trellis".into()
}

fn default_redis_timeout() -> Duration {
    Duration::from_millis(500)
}

/// `[cache]`: sizes and time bounds of the two-tier cache.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Memory of the in-process tier (values and keys).
    pub l1_size: ByteSize,
    /// The largest value a plugin may store.
    pub max_value: ByteSize,
    /// The longest ttl a plugin may ask for (longer ones are cut to it).
    #[serde(with = "humantime_serde")]
    pub max_ttl: Duration,
    /// With Redis: how long a node keeps an entry in process at most. An
    /// invalidation published by another node normally arrives within
    /// milliseconds; if it is lost, this bounds how long the old value is
    /// served.
    #[serde(with = "humantime_serde")]
    pub l1_max_ttl: Duration,
    /// How long after expiry an entry may still be served when its reload
    /// fails (stale-on-error).
    #[serde(with = "humantime_serde")]
    pub stale_for: Duration,
    /// How long a `fetch` waits for another caller's load of the same key
    /// before loading itself.
    #[serde(with = "humantime_serde")]
    pub load_wait: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            l1_size: ByteSize::mib(64),
            max_value: ByteSize::mib(1),
            max_ttl: Duration::from_secs(24 * 3600),
            l1_max_ttl: Duration::from_secs(10),
            stale_for: Duration::from_secs(30),
            load_wait: Duration::from_secs(5),
        }
    }
}

/// `[compression]`: response bodies compressed with gzip, brotli or zstd,
/// as the client's `Accept-Encoding` prefers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompressionConfig {
    /// Compress responses at all.
    pub enabled: bool,
    /// Smaller bodies are sent as they are (at most 64 KiB).
    pub min_size: ByteSize,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        CompressionConfig {
            enabled: true,
            min_size: ByteSize::kib(1),
        }
    }
}

/// `[batch]`: bounds of `POST /api/v1/batch`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Most operations in one batch (more is a 413).
    pub max_operations: usize,
    /// Operations running at once.
    pub concurrency: usize,
    /// Largest batch body.
    pub max_body: ByteSize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_operations: 100,
            concurrency: 8,
            max_body: ByteSize::mib(4),
        }
    }
}

/// `[deploy]`: changing plugins on a live server (see
/// `docs/operations.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeployConfig {
    /// Reload a plugin when its component file (`path`) changes.
    pub watch: bool,
    /// Quiet time after the last change to a file before it is reloaded,
    /// so a file still being written is not read half-way.
    #[serde(with = "humantime_serde")]
    pub debounce: Duration,
    /// How often a node checks the shared database for versions uploaded
    /// on other nodes (PostgreSQL also announces them at once).
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Largest component `PUT /admin/plugins/{name}` accepts.
    pub max_upload: ByteSize,
    /// Uploaded versions kept per plugin (besides the live and previous).
    pub keep_versions: u32,
    /// This node's name in `GET /admin/plugins`. Default: `<hostname>-<pid>`.
    pub node: Option<String>,
}

impl Default for DeployConfig {
    fn default() -> Self {
        DeployConfig {
            watch: true,
            debounce: Duration::from_millis(300),
            poll_interval: Duration::from_secs(2),
            max_upload: ByteSize::mib(64),
            keep_versions: 5,
            node: None,
        }
    }
}

/// `[jobs]`: the durable job queue (in the `sql` backend's engine), the
/// workers of this node and the leader's maintenance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// Jobs run at once per queue on this node; a queue not listed is
    /// not worked here. Default: `{ default = 8 }`.
    pub queues: BTreeMap<String, u32>,
    /// Jobs claimed per round trip (at most the free slots).
    pub claim_batch: u32,
    /// How often idle workers look for jobs when no notification wakes
    /// them (PostgreSQL notifies; SQLite across processes relies on this).
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How often a worker says it is alive (and learns of cancellations).
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    /// A worker silent this long is dead: the leader's rescuer sends its
    /// running jobs back to the queue.
    #[serde(with = "humantime_serde")]
    pub worker_timeout: Duration,
    /// Time one attempt may take, unless its kind says otherwise.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// The most a kind may ask for.
    #[serde(with = "humantime_serde")]
    pub max_timeout: Duration,
    /// Attempts of a kind that declares 0.
    pub max_attempts: u32,
    /// Retry delay after the first failure; doubles per attempt, with
    /// jitter, up to `backoff_max`.
    #[serde(with = "humantime_serde")]
    pub backoff_base: Duration,
    /// The longest retry delay.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Largest payload (API and `jobs.enqueue`).
    pub max_payload: ByteSize,
    /// Completed and cancelled jobs are deleted this long after finishing;
    /// discarded ones are kept for inspection and redrive.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// After downtime, the latest missed tick of a schedule still runs if
    /// it is no older than this; older missed ticks are skipped.
    #[serde(with = "humantime_serde")]
    pub missed_tick_window: Duration,
    /// How often the leader rescues, prunes and checks schedules.
    #[serde(with = "humantime_serde")]
    pub maintenance_interval: Duration,
    /// Connections of the queue's own PostgreSQL pool.
    pub connections: u32,
    /// Schedules declared by the operator (besides the plugins' own).
    pub schedules: Vec<ScheduleConfig>,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            queues: BTreeMap::from([("default".to_string(), 8)]),
            claim_batch: 32,
            poll_interval: Duration::from_secs(1),
            heartbeat: Duration::from_secs(2),
            worker_timeout: Duration::from_secs(15),
            timeout: Duration::from_secs(60),
            max_timeout: Duration::from_secs(3600),
            max_attempts: 5,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(3600),
            max_payload: ByteSize::kib(256),
            retention: Duration::from_secs(24 * 3600),
            missed_tick_window: Duration::from_secs(3600),
            maintenance_interval: Duration::from_secs(1),
            connections: 8,
            schedules: Vec::new(),
        }
    }
}

/// `[[jobs.schedules]]`: a job enqueued on a cron schedule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// The plugin that runs it.
    pub plugin: String,
    /// Unique per plugin.
    pub name: String,
    /// Five fields, or six with seconds first; UTC.
    pub cron: String,
    /// One of the plugin's job kinds.
    pub kind: String,
    /// The payload, as JSON.
    #[serde(default)]
    pub payload: Option<serde_json::Value>,
}

/// `[lock]`: bounds of the `lock` capability.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockConfig {
    /// The longest lease a plugin may take.
    #[serde(with = "humantime_serde")]
    pub max_ttl: Duration,
    /// The longest a plugin may wait to acquire.
    #[serde(with = "humantime_serde")]
    pub max_wait: Duration,
}

impl Default for LockConfig {
    fn default() -> Self {
        LockConfig {
            max_ttl: Duration::from_secs(300),
            max_wait: Duration::from_secs(30),
        }
    }
}

/// `[server]`: the listener and the HTTP connection limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Connections served at once; further ones wait in the accept backlog.
    pub max_connections: usize,
    /// Time a client has to send a request's headers (slowloris guard).
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Largest request head (HTTP/1) or header list (HTTP/2); larger is 431.
    pub max_header_bytes: ByteSize,
    /// Time in-flight requests get to finish on shutdown.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// On SIGTERM, how long the node keeps accepting connections while
    /// `/readyz` answers 503, so load balancers take it out of rotation
    /// before new connections are refused. Default 0 s.
    #[serde(with = "humantime_serde")]
    pub drain_delay: Duration,
}

/// `[admin]`: who may use `/admin/*` and `/api/v1/monitoring/*`.
///
/// Requests carry `Authorization: Bearer <token>`; any listed token is
/// accepted (list the new one beside the old to rotate). With no tokens,
/// admin endpoints are open only while the server listens on a loopback
/// address, and refused otherwise.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Accepted bearer tokens, at least 16 characters each.
    /// `TRELLIS_ADMIN__TOKENS='["..."]'` sets them from the environment.
    pub tokens: Vec<String>,
    /// Serve `/metrics` without a token.
    pub public_metrics: bool,
    /// Serve `/healthz`, `/readyz` and `/api/v1/monitoring/health` without
    /// a token.
    pub public_health: bool,
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("tokens", &format_args!("[{} redacted]", self.tokens.len()))
            .field("public_metrics", &self.public_metrics)
            .field("public_health", &self.public_health)
            .finish()
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            tokens: Vec::new(),
            public_metrics: true,
            public_health: true,
        }
    }
}

/// `[telemetry]`: request tracing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// OTLP/HTTP collector base URL (`http://host:4318`); spans are posted
    /// to `<url>/v1/traces` as protobuf. Absent: no export.
    pub otlp_endpoint: Option<String>,
    /// Share of traces exported, 0 to 1 (a sampled incoming `traceparent`
    /// is always followed). The local store keeps errors and slow requests
    /// whatever the ratio.
    pub sampling_ratio: f64,
    /// Requests at least this slow are kept in the local store first.
    #[serde(with = "humantime_serde")]
    pub slow_request: Duration,
    /// Traces the local store keeps.
    pub traces_kept: usize,
    /// `service.name` of exported spans and metrics.
    pub service_name: String,
    /// With an OTLP endpoint: also post the metrics of `/metrics` to
    /// `<url>/v1/metrics`.
    pub export_metrics: bool,
    /// How often metrics are posted.
    #[serde(with = "humantime_serde")]
    pub metrics_interval: Duration,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            sampling_ratio: 0.1,
            slow_request: Duration::from_millis(500),
            traces_kept: 1000,
            service_name: "trellis".into(),
            export_metrics: true,
            metrics_interval: Duration::from_secs(30),
        }
    }
}

/// `[alerts]`: rules over the runtime's own figures, evaluated every
/// `evaluation_interval`; transitions are posted to every webhook.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// How often rules are evaluated.
    #[serde(with = "humantime_serde")]
    pub evaluation_interval: Duration,
    /// `http://` URLs that receive a JSON POST per transition.
    pub webhooks: Vec<String>,
    /// The rules (`[[alerts.rules]]`).
    pub rules: Vec<AlertRule>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            evaluation_interval: Duration::from_secs(10),
            webhooks: Vec::new(),
            rules: Vec::new(),
        }
    }
}

/// One `[[alerts.rules]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// The alert's name (`alertname` label).
    pub name: String,
    /// The condition, e.g. `route_p95_ms{route="/hello"} > 200`.
    pub expr: String,
    /// How long the condition must hold before the alert fires.
    #[serde(rename = "for", with = "humantime_serde", default)]
    pub for_: Duration,
    /// How long a firing alert keeps firing after the condition clears.
    #[serde(with = "humantime_serde", default)]
    pub keep_firing_for: Duration,
    /// `info`, `warning` or `critical`.
    #[serde(default = "default_severity")]
    pub severity: String,
    /// Extra labels on every alert of the rule.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// A line for people, sent with notifications.
    #[serde(default)]
    pub summary: Option<String>,
}

fn default_severity() -> String {
    "warning".into()
}

/// `[log]`: how logs are written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `pretty` (for people) or `json` (for machines).
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `info,trellis=debug`. `TRELLIS_LOG`
    /// wins over it.
    pub level: String,
    /// Add diagnostic headers to responses (`x-trellis-n-plus-one`). For
    /// development; off in production.
    pub debug_headers: bool,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// `[engine]`: the wasmtime engine shared by all plugins.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Cache compiled components on disk (keyed by wasm hash and engine
    /// settings) so restarts skip compilation.
    pub compile_cache: bool,
    /// The cache directory; default `<data_dir>/compile-cache`.
    pub cache_dir: Option<PathBuf>,
    /// Epoch tick: how often a running guest yields to the scheduler and has
    /// its deadline checked.
    #[serde(with = "humantime_serde")]
    pub epoch_tick: Duration,
    /// Instances alive at once across all plugins (sizes the pooling allocator).
    pub max_instances: u32,
}

/// `[sql]`: where plugins' databases live. Without `[sql.postgres]`, each
/// plugin gets a SQLite file under `<data_dir>/sql/`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqlConfig {
    /// PostgreSQL instead of SQLite.
    pub postgres: Option<PostgresConfig>,
    /// Pool settings, per plugin.
    pub pool: SqlPoolConfig,
    /// Statements slower than this are logged with their plan.
    #[serde(with = "humantime_serde")]
    pub slow_query: Duration,
    /// One statement shape run this many times in one request is flagged as
    /// an N+1 pattern.
    pub n_plus_one_threshold: u32,
}

impl Default for SqlConfig {
    fn default() -> Self {
        SqlConfig {
            postgres: None,
            pool: SqlPoolConfig::default(),
            slow_query: Duration::from_millis(250),
            n_plus_one_threshold: 10,
        }
    }
}

/// `[sql.postgres]`: the database the runtime provisions plugins in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// An admin connection URL (a role that may create roles and schemas),
    /// e.g. `postgres://postgres@127.0.0.1:5432/app`. Plugins never use it.
    pub url: String,
    /// Prefix of everything the runtime creates: its own schema is
    /// `<namespace>`, each plugin's role and schema `<namespace>_<plugin>`.
    /// Roles are cluster-wide, so deployments sharing a cluster need
    /// different namespaces.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Read replicas: URLs of streaming standbys of this database (the same
    /// credentials as `url`). Reads marked `replica-ok` outside a
    /// transaction go to one that is close enough; everything else to `url`.
    #[serde(default)]
    pub replicas: Vec<String>,
    /// A replica more WAL bytes behind the primary than this is skipped.
    #[serde(default = "default_max_replica_lag_bytes")]
    pub max_replica_lag_bytes: ByteSize,
    /// A replica behind the primary whose last replayed transaction is
    /// older than this is skipped.
    #[serde(default = "default_max_replica_lag", with = "humantime_serde")]
    pub max_replica_lag: Duration,
    /// How long a read that must see an earlier write (a consistency token)
    /// waits for a replica to replay it before going to the primary.
    #[serde(default = "default_replica_wait", with = "humantime_serde")]
    pub replica_wait: Duration,
    /// How often replica lag is sampled.
    #[serde(default = "default_lag_sample_interval", with = "humantime_serde")]
    pub lag_sample_interval: Duration,
    /// For this long after a principal's write, its replica-ok reads see
    /// that write even without a consistency token (on any node, with
    /// Redis). `0s` turns it off.
    #[serde(default = "default_causal_window", with = "humantime_serde")]
    pub causal_window: Duration,
    /// The request header that names the principal (a gateway's identity
    /// header, or the bearer token itself); only a hash of its value is
    /// kept.
    #[serde(default = "default_principal_header")]
    pub principal_header: String,
}

fn default_causal_window() -> Duration {
    Duration::from_secs(10)
}

fn default_principal_header() -> String {
    "authorization".into()
}

fn default_namespace() -> String {
    "trellis".into()
}

fn default_max_replica_lag_bytes() -> ByteSize {
    ByteSize::mib(16)
}

fn default_max_replica_lag() -> Duration {
    Duration::from_secs(5)
}

fn default_replica_wait() -> Duration {
    Duration::from_millis(100)
}

fn default_lag_sample_interval() -> Duration {
    Duration::from_millis(250)
}

/// `[sql.pool]`: each plugin's connection pool and statement bounds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqlPoolConfig {
    /// Connections kept open when idle.
    pub min_connections: u32,
    /// Connections at most.
    pub max_connections: u32,
    /// Wait for a free connection before `unavailable`.
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// Close connections idle this long.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Longest a statement may run (`timeout` error).
    #[serde(with = "humantime_serde")]
    pub statement_timeout: Duration,
    /// Rows one query may return (`invalid` error beyond).
    pub max_rows: usize,
}

impl Default for SqlPoolConfig {
    fn default() -> Self {
        SqlPoolConfig {
            min_connections: 0,
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(600),
            statement_timeout: Duration::from_secs(5),
            max_rows: 10_000,
        }
    }
}

/// Per-plugin limits. Each exceeded limit has its own error (see `docs/operations.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Wall-clock time per request; exceeded → 504.
    #[serde(with = "humantime_serde")]
    pub deadline: Duration,
    /// Linear memory per instance; exceeded → 500.
    pub memory: ByteSize,
    /// Instances of this plugin at once; more → 503 with `Retry-After`.
    pub max_concurrency: u32,
    /// Request body size; larger → 413.
    pub max_request_body: ByteSize,
    /// Response body size; larger → 500.
    pub max_response_body: ByteSize,
    /// Requests that wait for a free instance when `max_concurrency` are
    /// busy (within the deadline); more → 503 with `Retry-After`.
    pub max_queued: u32,
    /// Rows one query may return (`invalid` error beyond); at most
    /// `sql.pool.max_rows`.
    pub max_rows: u32,
    /// The largest value the plugin may store in the cache (`too-large`
    /// beyond); at most `cache.max_value`.
    pub max_cache_value: ByteSize,
    /// Jobs one request (or job run) may enqueue (`invalid` beyond).
    pub max_enqueue: u32,
}

/// `[plugins.<name>.limits]`: overrides of the default limits.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitOverrides {
    /// See [`Limits::deadline`].
    #[serde(with = "humantime_serde")]
    pub deadline: Option<Duration>,
    /// See [`Limits::memory`].
    pub memory: Option<ByteSize>,
    /// See [`Limits::max_concurrency`].
    pub max_concurrency: Option<u32>,
    /// See [`Limits::max_request_body`].
    pub max_request_body: Option<ByteSize>,
    /// See [`Limits::max_response_body`].
    pub max_response_body: Option<ByteSize>,
    /// See [`Limits::max_queued`].
    pub max_queued: Option<u32>,
    /// See [`Limits::max_rows`].
    pub max_rows: Option<u32>,
    /// See [`Limits::max_cache_value`].
    pub max_cache_value: Option<ByteSize>,
    /// See [`Limits::max_enqueue`].
    pub max_enqueue: Option<u32>,
}

/// `[plugins.<name>]`: one plugin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// A component file. Exactly one of `path` and `builtin`.
    pub path: Option<PathBuf>,
    /// An example plugin embedded in the binary (`hello`, `echo`).
    pub builtin: Option<String>,
    /// Capabilities granted to the plugin.
    #[serde(default = "default_grants")]
    pub grants: Vec<String>,
    /// Limit overrides.
    #[serde(default)]
    pub limits: LimitOverrides,
    /// Settings the plugin reads through the `config` capability.
    #[serde(default)]
    pub config: BTreeMap<String, SettingValue>,
    /// For a `wasi:http` component: the path prefix it serves under
    /// (default `/<name>`). It sees paths below the prefix.
    #[serde(default)]
    pub mount: Option<String>,
}

/// A plugin setting: any TOML scalar, handed to the plugin as a string.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum SettingValue {
    /// A string.
    String(String),
    /// An integer.
    Integer(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

impl std::fmt::Display for SettingValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SettingValue::String(s) => f.write_str(s),
            SettingValue::Integer(i) => write!(f, "{i}"),
            SettingValue::Float(x) => write!(f, "{x}"),
            SettingValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

fn default_grants() -> Vec<String> {
    vec!["log".into(), "config".into()]
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from(".trellis"),
            server: ServerConfig::default(),
            log: LogConfig::default(),
            engine: EngineConfig::default(),
            limits: Limits::default(),
            sql: SqlConfig::default(),
            admin: AdminConfig::default(),
            telemetry: TelemetryConfig::default(),
            alerts: AlertsConfig::default(),
            redis: None,
            cache: CacheConfig::default(),
            lock: LockConfig::default(),
            compression: CompressionConfig::default(),
            batch: BatchConfig::default(),
            jobs: JobsConfig::default(),
            deploy: DeployConfig::default(),
            plugins: None,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: ByteSize::kib(16),
            shutdown_grace: Duration::from_secs(30),
            drain_delay: Duration::ZERO,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Pretty,
            level: "info".into(),
            debug_headers: false,
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            compile_cache: true,
            cache_dir: None,
            epoch_tick: Duration::from_millis(2),
            max_instances: 1000,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_secs(10),
            memory: ByteSize::mib(64),
            max_concurrency: 100,
            max_request_body: ByteSize::mib(1),
            max_response_body: ByteSize::mib(8),
            max_queued: 32,
            max_rows: 10_000,
            max_cache_value: ByteSize::mib(1),
            max_enqueue: 100,
        }
    }
}

impl Limits {
    /// These limits with `overrides` applied.
    pub fn with(self, overrides: &LimitOverrides) -> Limits {
        Limits {
            deadline: overrides.deadline.unwrap_or(self.deadline),
            memory: overrides.memory.unwrap_or(self.memory),
            max_concurrency: overrides.max_concurrency.unwrap_or(self.max_concurrency),
            max_request_body: overrides.max_request_body.unwrap_or(self.max_request_body),
            max_response_body: overrides
                .max_response_body
                .unwrap_or(self.max_response_body),
            max_queued: overrides.max_queued.unwrap_or(self.max_queued),
            max_rows: overrides.max_rows.unwrap_or(self.max_rows),
            max_cache_value: overrides.max_cache_value.unwrap_or(self.max_cache_value),
            max_enqueue: overrides.max_enqueue.unwrap_or(self.max_enqueue),
        }
    }
}

impl PluginConfig {
    /// A plugin uploaded through the admin API that trellis.toml does not
    /// configure: `grants`, default limits, no settings.
    pub fn uploaded(grants: Vec<String>) -> Self {
        PluginConfig {
            path: None,
            builtin: None,
            grants,
            limits: LimitOverrides::default(),
            config: BTreeMap::new(),
            mount: None,
        }
    }

    /// A plugin config serving the embedded example `name`, granted every
    /// capability (the examples are ours).
    pub fn builtin(name: &str) -> Self {
        PluginConfig {
            path: None,
            builtin: Some(name.to_string()),
            grants: CAPABILITIES.iter().map(|c| c.to_string()).collect(),
            limits: LimitOverrides::default(),
            config: BTreeMap::new(),
            mount: None,
        }
    }
}

/// Where a plugin's component comes from.
#[derive(Debug, Clone)]
pub enum PluginSource {
    /// A file on disk.
    File(PathBuf),
    /// An example embedded in the binary.
    Builtin(&'static [u8]),
}

impl Config {
    /// Loads `path` (or the defaults when `None`), applies the `TRELLIS_*`
    /// variables of the process environment, and validates the result.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load_with_env(path, std::env::vars())
    }

    /// As [`Config::load`], with the environment given explicitly.
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let text = match path {
            Some(path) => std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?,
            None => String::new(),
        };
        let shown = path.unwrap_or(Path::new("<defaults>"));
        Config::parse(&text, shown, env)
    }

    /// Parses and validates config `text`; `path` is only used in messages
    /// and to resolve relative plugin paths.
    pub fn parse(
        text: &str,
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let parse_error = |err: toml::de::Error| ConfigError::Parse {
            path: path.to_path_buf(),
            message: err.to_string(),
        };
        // First the file alone, so errors point at its lines.
        let mut config: Config = toml::from_str(text).map_err(parse_error)?;
        let overrides = env_overrides(env);
        if !overrides.is_empty() {
            let mut table: toml::Table = toml::from_str(text).map_err(parse_error)?;
            let keys: Vec<String> = overrides.iter().map(|(k, _)| k.join(".")).collect();
            for (key, value) in overrides {
                apply_override(&mut table, &key, value)?;
            }
            config =
                serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|err| {
                    ConfigError::Env {
                        key: env_error_key(err.path().to_string(), &keys),
                        message: err.into_inner().to_string(),
                    }
                })?;
        }
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        config.validate()?;
        Ok(config)
    }

    /// The plugins to serve: the configured ones, or the embedded examples.
    pub fn plugins(&self) -> BTreeMap<String, PluginConfig> {
        self.plugins.clone().unwrap_or_else(|| {
            examples::EXAMPLES
                .iter()
                .map(|(name, _)| (name.to_string(), PluginConfig::builtin(name)))
                .collect()
        })
    }

    /// The compile cache directory (absolute), if the cache is on.
    pub fn cache_dir(&self) -> Option<PathBuf> {
        self.engine.compile_cache.then(|| {
            let dir = self
                .engine
                .cache_dir
                .clone()
                .unwrap_or_else(|| self.data_dir.join("compile-cache"));
            std::path::absolute(&dir).unwrap_or(dir)
        })
    }

    fn resolve_paths(&mut self, base: &Path) {
        if let Some(plugins) = &mut self.plugins {
            for plugin in plugins.values_mut() {
                if let Some(path) = &mut plugin.path
                    && path.is_relative()
                {
                    *path = base.join(&*path);
                }
            }
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let server = &self.server;
        if server.max_connections == 0 {
            return invalid("server.max_connections", "must be at least 1");
        }
        if server.max_header_bytes.as_u64() < 8192 {
            return invalid("server.max_header_bytes", "must be at least 8 KiB");
        }
        if server.header_read_timeout.is_zero() {
            return invalid("server.header_read_timeout", "must be more than 0");
        }
        if self.engine.epoch_tick.is_zero() || self.engine.epoch_tick > Duration::from_secs(1) {
            return invalid("engine.epoch_tick", "must be between 1ms and 1s");
        }
        if self.engine.max_instances == 0 {
            return invalid("engine.max_instances", "must be at least 1");
        }
        let deploy = &self.deploy;
        if deploy.poll_interval < Duration::from_millis(100) {
            return invalid("deploy.poll_interval", "must be at least 100ms");
        }
        if deploy.debounce.is_zero() || deploy.debounce > Duration::from_secs(60) {
            return invalid("deploy.debounce", "must be between 1ms and 60s");
        }
        if deploy.max_upload.as_u64() < 1024 {
            return invalid("deploy.max_upload", "must be at least 1 KiB");
        }
        if deploy
            .node
            .as_ref()
            .is_some_and(|n| n.is_empty() || n.len() > 128)
        {
            return invalid("deploy.node", "must be 1 to 128 characters");
        }
        let pool = &self.sql.pool;
        if pool.max_connections == 0 || pool.min_connections > pool.max_connections {
            return invalid(
                "sql.pool.max_connections",
                "must be at least 1 and at least min_connections",
            );
        }
        if pool.statement_timeout.is_zero() || pool.acquire_timeout.is_zero() {
            return invalid("sql.pool", "timeouts must be more than 0");
        }
        if self.sql.n_plus_one_threshold < 2 {
            return invalid("sql.n_plus_one_threshold", "must be at least 2");
        }
        if pool.max_rows == 0 {
            return invalid("sql.pool.max_rows", "must be at least 1");
        }
        if let Some(pg) = &self.sql.postgres {
            if !(pg.url.starts_with("postgres://") || pg.url.starts_with("postgresql://")) {
                return invalid("sql.postgres.url", "must be a postgres:// URL");
            }
            if let Some(bad) = pg
                .replicas
                .iter()
                .find(|u| !(u.starts_with("postgres://") || u.starts_with("postgresql://")))
            {
                return invalid(
                    "sql.postgres.replicas",
                    &format!("`{bad}` is not a postgres:// URL"),
                );
            }
            if pg.lag_sample_interval.is_zero() {
                return invalid("sql.postgres.lag_sample_interval", "must be more than 0");
            }
            let ns = pg.namespace.as_bytes();
            let valid = !ns.is_empty()
                && ns.len() <= 24
                && ns[0].is_ascii_lowercase()
                && ns
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_');
            if !valid {
                return invalid(
                    "sql.postgres.namespace",
                    "1 to 24 of a-z, 0-9 and `_`, starting with a letter",
                );
            }
        }
        if let Some(short) = self.admin.tokens.iter().position(|t| t.trim().len() < 16) {
            return invalid(
                &format!("admin.tokens[{short}]"),
                "an admin token is at least 16 characters",
            );
        }
        let telemetry = &self.telemetry;
        if !(0.0..=1.0).contains(&telemetry.sampling_ratio) {
            return invalid("telemetry.sampling_ratio", "must be between 0 and 1");
        }
        if let Some(url) = &telemetry.otlp_endpoint
            && !url.starts_with("http://")
        {
            return invalid(
                "telemetry.otlp_endpoint",
                "must be an http:// URL (OTLP over HTTP with protobuf; put a collector on the host for TLS)",
            );
        }
        if telemetry.metrics_interval < Duration::from_secs(1) {
            return invalid("telemetry.metrics_interval", "must be at least 1s");
        }
        if telemetry.traces_kept == 0 {
            return invalid("telemetry.traces_kept", "must be at least 1");
        }
        self.validate_alerts()?;
        self.validate_cache()?;
        self.validate_jobs()?;
        if let Err(err) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return invalid("log.level", &format!("not a valid filter: {err}"));
        }
        self.limits.validate("limits")?;
        for (name, plugin) in self.plugins() {
            self.validate_plugin(&name, &plugin)?;
        }
        Ok(())
    }

    fn validate_jobs(&self) -> Result<(), ConfigError> {
        let jobs = &self.jobs;
        for (queue, concurrency) in &jobs.queues {
            if !jobs::valid_queue(queue) {
                return invalid(
                    &format!("jobs.queues.{queue}"),
                    "a queue name is 1 to 64 of a-z, 0-9, `-` and `_`",
                );
            }
            if *concurrency == 0 {
                return invalid(&format!("jobs.queues.{queue}"), "must be at least 1");
            }
        }
        if jobs.claim_batch == 0 || jobs.max_attempts == 0 || jobs.connections == 0 {
            return invalid(
                "jobs",
                "claim_batch, max_attempts and connections must be at least 1",
            );
        }
        let durations = [
            ("poll_interval", jobs.poll_interval),
            ("heartbeat", jobs.heartbeat),
            ("timeout", jobs.timeout),
            ("backoff_base", jobs.backoff_base),
            ("maintenance_interval", jobs.maintenance_interval),
        ];
        if let Some((key, _)) = durations.iter().find(|(_, d)| d.is_zero()) {
            return invalid(&format!("jobs.{key}"), "must be more than 0");
        }
        if jobs.worker_timeout < jobs.heartbeat * 3 {
            return invalid("jobs.worker_timeout", "must be at least 3 heartbeats");
        }
        if jobs.timeout > jobs.max_timeout || jobs.backoff_base > jobs.backoff_max {
            return invalid(
                "jobs",
                "timeout must be at most max_timeout and backoff_base at most backoff_max",
            );
        }
        let plugins = self.plugins();
        for (i, schedule) in jobs.schedules.iter().enumerate() {
            let key = format!("jobs.schedules[{i}]");
            if !plugins.contains_key(&schedule.plugin) {
                return invalid(
                    &key,
                    &format!("plugin `{}` is not configured", schedule.plugin),
                );
            }
            if let Err(message) = jobs::parse_cron(&schedule.cron) {
                return invalid(&format!("{key}.cron"), &message);
            }
            if schedule.name.is_empty() || schedule.kind.is_empty() {
                return invalid(&key, "name and kind must not be empty");
            }
        }
        Ok(())
    }

    fn validate_cache(&self) -> Result<(), ConfigError> {
        if let Some(redis) = &self.redis {
            if !(redis.url.starts_with("redis://") || redis.url.starts_with("rediss://")) {
                return invalid("redis.url", "must be a redis:// URL");
            }
            if redis.namespace.is_empty()
                || !redis
                    .namespace
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return invalid("redis.namespace", "letters, digits, `_` and `-`");
            }
            if redis.command_timeout.is_zero() {
                return invalid("redis.command_timeout", "must be more than 0");
            }
        }
        let cache = &self.cache;
        if cache.max_value.as_u64() == 0 || cache.max_value > cache.l1_size {
            return invalid("cache.max_value", "must be more than 0 and at most l1_size");
        }
        if cache.max_ttl.is_zero() || cache.l1_max_ttl.is_zero() {
            return invalid("cache", "max_ttl and l1_max_ttl must be more than 0");
        }
        if self.compression.min_size.as_u64() > u64::from(u16::MAX) {
            return invalid("compression.min_size", "at most 64 KiB");
        }
        if self.batch.max_operations == 0 || self.batch.concurrency == 0 {
            return invalid("batch", "max_operations and concurrency must be at least 1");
        }
        if self.lock.max_ttl.is_zero() {
            return invalid("lock.max_ttl", "must be more than 0");
        }
        Ok(())
    }

    fn validate_alerts(&self) -> Result<(), ConfigError> {
        let alerts = &self.alerts;
        if alerts.evaluation_interval < Duration::from_millis(50) {
            return invalid("alerts.evaluation_interval", "must be at least 50ms");
        }
        if let Some(i) = alerts
            .webhooks
            .iter()
            .position(|u| !u.starts_with("http://"))
        {
            return invalid(&format!("alerts.webhooks[{i}]"), "must be an http:// URL");
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, rule) in alerts.rules.iter().enumerate() {
            let key = |field: &str| format!("alerts.rules[{i}].{field}");
            if rule.name.is_empty() || !names.insert(rule.name.as_str()) {
                return invalid(&key("name"), "must be set and unique");
            }
            alert_rule::Expr::parse(&rule.expr).map_err(|message| ConfigError::Invalid {
                key: key("expr"),
                message,
            })?;
            if !matches!(rule.severity.as_str(), "info" | "warning" | "critical") {
                return invalid(&key("severity"), "one of info, warning, critical");
            }
        }
        Ok(())
    }

    fn validate_plugin(&self, name: &str, plugin: &PluginConfig) -> Result<(), ConfigError> {
        let key = |field: &str| format!("plugins.{name}.{field}");
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !valid_name {
            return invalid(
                &format!("plugins.{name}"),
                "a plugin name is 1 to 64 of a-z, 0-9, `-` and `_`",
            );
        }
        plugin.source().map_err(|message| ConfigError::Invalid {
            key: key("path"),
            message,
        })?;
        for grant in &plugin.grants {
            if !CAPABILITIES.contains(&grant.as_str()) {
                return invalid(
                    &key("grants"),
                    &format!(
                        "unknown capability `{grant}`; known: {}",
                        CAPABILITIES.join(", ")
                    ),
                );
            }
        }
        if let Some(mount) = &plugin.mount {
            let plain = mount.len() > 1
                && mount.starts_with('/')
                && !mount.ends_with('/')
                && !mount.contains(['{', '}', '*', '?', '#', ' ']);
            if !plain {
                return invalid(
                    &key("mount"),
                    "a mount is a path prefix such as `/wasi`: it starts with `/`, does not end \
                     with one, and has no `{`, `}`, `*`, `?`, `#` or spaces",
                );
            }
            if paths::is_reserved(mount) {
                return invalid(
                    &key("mount"),
                    &format!(
                        "`{mount}` is served by the runtime itself (reserved: {})",
                        paths::RESERVED.join(", ")
                    ),
                );
            }
        }
        self.limits
            .with(&plugin.limits)
            .validate(&format!("plugins.{name}.limits"))
    }
}

impl PluginConfig {
    /// The path prefix a `wasi:http` component serves under.
    pub fn mount(&self, name: &str) -> String {
        self.mount.clone().unwrap_or_else(|| format!("/{name}"))
    }

    /// Where the component comes from, for messages: its path or
    /// `builtin:<name>`.
    pub fn source_name(&self) -> String {
        match (&self.builtin, &self.path) {
            (Some(builtin), _) => format!("builtin:{builtin}"),
            (None, Some(path)) => path.display().to_string(),
            (None, None) => String::new(),
        }
    }

    /// Where the component comes from; an error says why it is unusable.
    pub fn source(&self) -> Result<PluginSource, String> {
        match (&self.path, &self.builtin) {
            (Some(path), None) => {
                if path.is_file() {
                    Ok(PluginSource::File(path.clone()))
                } else {
                    Err(format!("{} is not a readable file", path.display()))
                }
            }
            (None, Some(name)) => examples::example(name)
                .map(PluginSource::Builtin)
                .ok_or_else(|| {
                    let known: Vec<&str> = examples::EXAMPLES.iter().map(|(n, _)| *n).collect();
                    format!("no builtin plugin `{name}`; builtins: {}", known.join(", "))
                }),
            _ => Err("set exactly one of `path` and `builtin`".into()),
        }
    }
}

impl Limits {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        if self.deadline.is_zero() {
            return invalid(&format!("{prefix}.deadline"), "must be more than 0");
        }
        if self.memory < ByteSize::mib(1) || self.memory > ByteSize::gib(4) {
            return invalid(
                &format!("{prefix}.memory"),
                "must be between 1 MiB and 4 GiB",
            );
        }
        if self.max_concurrency == 0 {
            return invalid(&format!("{prefix}.max_concurrency"), "must be at least 1");
        }
        if self.max_response_body.as_u64() == 0 {
            return invalid(
                &format!("{prefix}.max_response_body"),
                "must be more than 0",
            );
        }
        if self.max_rows == 0 {
            return invalid(&format!("{prefix}.max_rows"), "must be at least 1");
        }
        if self.max_cache_value.as_u64() == 0 {
            return invalid(&format!("{prefix}.max_cache_value"), "must be more than 0");
        }
        Ok(())
    }
}

fn invalid<T>(key: &str, message: &str) -> Result<T, ConfigError> {
    Err(ConfigError::Invalid {
        key: key.to_string(),
        message: message.to_string(),
    })
}

/// `TRELLIS_A__B_C=v` → (["a", "b_c"], v), for every override variable.
fn env_overrides(
    env: impl IntoIterator<Item = (String, String)>,
) -> Vec<(Vec<String>, toml::Value)> {
    let mut overrides: Vec<_> = env
        .into_iter()
        .filter(|(k, _)| !NOT_OVERRIDES.contains(&k.as_str()))
        .filter_map(|(k, v)| {
            let rest = k.strip_prefix("TRELLIS_")?;
            let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
            Some((path, parse_env_value(&v)))
        })
        .collect();
    overrides.sort_by(|a, b| a.0.cmp(&b.0));
    overrides
}

fn parse_env_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

fn apply_override(
    table: &mut toml::Table,
    key: &[String],
    value: toml::Value,
) -> Result<(), ConfigError> {
    let (last, parents) = key.split_last().ok_or_else(|| ConfigError::Env {
        key: String::new(),
        message: "empty key".into(),
    })?;
    let mut current = table;
    for (i, part) in parents.iter().enumerate() {
        let entry = current
            .entry(part.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry.as_table_mut().ok_or_else(|| ConfigError::Env {
            key: key[..=i].join("."),
            message: "is not a table, so it has no keys to override".into(),
        })?;
    }
    current.insert(last.clone(), value);
    Ok(())
}

/// Names the override behind a schema error: the variable whose key the
/// error path starts with, else the path itself.
fn env_error_key(path: String, keys: &[String]) -> String {
    keys.iter()
        .find(|k| path.starts_with(k.as_str()) || k.starts_with(path.as_str()))
        .map(|k| format!("TRELLIS_{}", k.to_ascii_uppercase().replace('.', "__")))
        .map(|var| format!("{var} → {path}"))
        .unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Config::parse(text, Path::new("trellis.toml"), env)
    }

    #[test]
    fn defaults_serve_the_examples() {
        let config = parse("", &[]).expect("defaults are valid");
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
        let plugins = config.plugins();
        assert!(plugins.contains_key("hello"));
        assert!(!plugins.contains_key("misbehave"));
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let err =
            parse("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n", &[]).expect_err("unknown key");
        let msg = err.to_string();
        assert!(msg.contains("lisen"), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
    }

    #[test]
    fn wrong_type_names_line() {
        let msg = parse("[server]\nmax_connections = \"many\"\n", &[])
            .expect_err("wrong type")
            .to_string();
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn env_overrides_apply_and_name_the_variable() {
        let config = parse(
            "",
            &[
                ("TRELLIS_SERVER__LISTEN", "127.0.0.1:9999"),
                ("TRELLIS_LIMITS__DEADLINE", "250ms"),
                ("TRELLIS_CONFIG", "ignored.toml"),
            ],
        )
        .expect("valid overrides");
        assert_eq!(config.server.listen.port(), 9999);
        assert_eq!(config.limits.deadline, Duration::from_millis(250));

        let msg = parse("", &[("TRELLIS_SERVER__MAX_CONECTIONS", "3")])
            .expect_err("unknown key")
            .to_string();
        assert!(msg.contains("TRELLIS_SERVER__MAX_CONECTIONS"), "{msg}");
    }

    #[test]
    fn plugin_needs_exactly_one_source() {
        let msg = parse("[plugins.x]\ngrants = []\n", &[])
            .expect_err("no source")
            .to_string();
        assert!(msg.contains("plugins.x.path"), "{msg}");
        let msg = parse("[plugins.x]\npath = \"/nonexistent.wasm\"\n", &[])
            .expect_err("missing file")
            .to_string();
        assert!(msg.contains("/nonexistent.wasm"), "{msg}");
    }

    #[test]
    fn unknown_grant_is_rejected() {
        let msg = parse(
            "[plugins.h]\nbuiltin = \"hello\"\ngrants = [\"teleport\"]\n",
            &[],
        )
        .expect_err("unknown grant")
        .to_string();
        assert!(msg.contains("plugins.h.grants"), "{msg}");
    }

    #[test]
    fn limits_merge_and_validate() {
        let config = parse(
            "[limits]\ndeadline = \"2s\"\n[plugins.h]\nbuiltin = \"hello\"\n[plugins.h.limits]\nmemory = \"16MiB\"\n",
            &[],
        )
        .expect("valid");
        let plugins = config.plugins();
        let limits = config.limits.with(&plugins["h"].limits);
        assert_eq!(limits.deadline, Duration::from_secs(2));
        assert_eq!(limits.memory, ByteSize::mib(16));
        let msg = parse("[limits]\nmemory = \"10KiB\"\n", &[])
            .expect_err("too small")
            .to_string();
        assert!(msg.contains("limits.memory"), "{msg}");
    }
}

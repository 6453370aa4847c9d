//! Loading a plugin version: read the component, compile it (on the blocking
//! pool, through the compile cache), check its imports against the grants,
//! pre-instantiate it, read its manifest in a sandboxed call, validate it.

use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use wasmtime::Store;
use wasmtime::component::Component;

use wasmtime::component::InstancePre;
use wasmtime_wasi_http::p2::bindings::ProxyIndices;

use super::bindings::{
    PluginManifest, batch_handler, http_handler, job_handler, manifest, migrations,
};
use super::route_options::RouteOptions;
use super::state::{HostState, PluginContext, PluginJobs};
use super::{Exports, LoadedPlugin, PluginHost};
use crate::backend::lock::LockError;
use crate::backend::sql::{Migration as SqlMigration, SqlError};
use crate::config::{CAPABILITIES, Limits, PluginConfig, PluginSource, ScheduleConfig};
use crate::jobs::{JobKinds, KindSpec, ScheduleSpec};

/// How long one node may hold a plugin's migration lock, and how long
/// another waits for it.
const MIGRATION_LOCK_TTL: std::time::Duration = std::time::Duration::from_secs(120);

/// HTTP methods a route may declare.
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// The WIT package whose interfaces are capabilities.
const CAPABILITY_PACKAGE: &str = "trellis:plugin/";

/// The version of the `trellis:plugin` package this runtime implements
/// (`wit/world.wit`); components built against an earlier 0.1 link too.
pub const WORLD_VERSION: &str = "0.1.6";

/// Why a plugin version did not load. The message names the plugin and says
/// what to change.
#[derive(Debug, thiserror::Error)]
#[error("plugin `{plugin}` ({source_name}): {kind}")]
pub struct LoadError {
    /// The operator's name for the plugin.
    pub plugin: String,
    /// Where the component came from (a path or `builtin:<name>`).
    pub source_name: String,
    /// What went wrong.
    pub kind: LoadErrorKind,
}

/// What went wrong while loading.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadErrorKind {
    /// The config names no usable component.
    #[error("{0}")]
    Source(String),
    /// The file could not be read.
    #[error("cannot read the component: {0}")]
    Read(std::io::Error),
    /// The bytes are not a WebAssembly component.
    #[error("not a WebAssembly component: {0}")]
    NotComponent(String),
    /// The component imports a capability the operator did not grant.
    #[error(
        "uses capability `{capability}`, which is not granted; to grant it, add \"{capability}\" \
         to `grants` under [plugins.{plugin}] in trellis.toml"
    )]
    NotGranted {
        /// The capability.
        capability: String,
        /// The plugin, for the config hint.
        plugin: String,
    },
    /// The component does not fit the world (missing export, unknown import).
    #[error("does not implement the trellis:plugin world: {0}")]
    World(String),
    /// A required export is missing: not a Trellis plugin.
    #[error(
        "does not export `{CAPABILITY_PACKAGE}{0}`: it is not a Trellis plugin (a Rust plugin \
         exports it with `trellis_sdk::plugin!`)"
    )]
    MissingExport(&'static str),
    /// Built against a WIT version this runtime does not implement.
    #[error(
        "was built against trellis:plugin@{found} (`{interface}`); this runtime implements \
         trellis:plugin@{WORLD_VERSION} and loads components built against 0.1.0 to \
         {WORLD_VERSION}{advice}"
    )]
    WitVersion {
        /// The version the component names.
        found: String,
        /// The import or export that names it.
        interface: String,
        /// What to do.
        advice: &'static str,
    },
    /// Reading the manifest failed (trap, deadline, ...).
    #[error("reading its manifest failed: {0}")]
    Manifest(String),
    /// The manifest is not acceptable.
    #[error("invalid manifest: {0}")]
    InvalidManifest(String),
    /// The plugin's database could not be provisioned.
    #[error("its database is unavailable: {0}")]
    Database(SqlError),
    /// A migration failed; the version does not load.
    #[error("migration failed: {0}")]
    Migration(String),
    /// Its routes conflict with another live plugin's.
    #[error("{0}")]
    Routes(String),
    /// Its job kinds or schedules are not acceptable.
    #[error("invalid job kinds: {0}")]
    Jobs(String),
}

impl PluginHost {
    /// Loads one plugin version from where its config points; see the
    /// module docs for the steps.
    pub async fn load(
        &self,
        name: &str,
        config: &PluginConfig,
        limits: Limits,
        operator_schedules: &[ScheduleConfig],
    ) -> Result<Arc<LoadedPlugin>, LoadError> {
        let source_name = config.source_name();
        let bytes = read_component(config).await.map_err(|kind| LoadError {
            plugin: name.to_string(),
            source_name: source_name.clone(),
            kind,
        })?;
        self.load_bytes(
            name,
            &source_name,
            bytes,
            config,
            limits,
            operator_schedules,
            &|_| Ok(()),
        )
        .await
    }

    /// Loads one plugin version from its component's bytes (`source_name`
    /// says where they came from, for messages); `config` supplies grants
    /// and settings, its `path` and `builtin` are not read. `check_routes`
    /// runs on the manifest's routes before the database is touched (a
    /// reload checks them against the other live plugins').
    #[allow(clippy::too_many_arguments)]
    pub async fn load_bytes(
        &self,
        name: &str,
        source_name: &str,
        bytes: Vec<u8>,
        config: &PluginConfig,
        limits: Limits,
        operator_schedules: &[ScheduleConfig],
        check_routes: &(dyn Fn(&[super::Route]) -> Result<(), String> + Sync),
    ) -> Result<Arc<LoadedPlugin>, LoadError> {
        let fail = |kind| LoadError {
            plugin: name.to_string(),
            source_name: source_name.to_string(),
            kind,
        };
        let started = Instant::now();
        let hash = format!("{:x}", Sha256::digest(&bytes));
        let component = self.compile(bytes).await.map_err(fail)?;
        let world = check_world(&component, self).map_err(fail)?;
        let imported = check_grants(&component, self, name, &config.grants).map_err(fail)?;
        let (pre, exports) = self.pre_instantiate(&component, world).map_err(fail)?;

        let mut context = PluginContext {
            name: name.to_string(),
            settings: config
                .config
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
            limits,
            sql: None,
            sql_watch: self.sql_watch,
            query_cache: self.query_cache.clone(),
            cache: self.cache.clone(),
            locks: self.locks.clone(),
            stats: self.metrics.plugin(name),
            tracer: self.tracing.tracer().clone(),
            errors: self.errors.clone(),
            jobs: None,
        };
        let mount = (world == World::WasiHttp).then(|| config.mount(name));
        let (manifest, declared_jobs) = match &mount {
            None => {
                let (manifest, declared_jobs) =
                    read_manifest(self, &pre, &exports, &Arc::new(context.clone()))
                        .await
                        .map_err(|e| fail(LoadErrorKind::Manifest(e)))?;
                validate_manifest(&manifest, &config.grants).map_err(fail)?;
                (manifest, declared_jobs)
            }
            Some(mount) => (wasi_http_manifest(name, mount), None),
        };
        check_routes(&manifest.routes).map_err(|e| fail(LoadErrorKind::Routes(e)))?;
        let kinds = self
            .job_kinds(declared_jobs, operator_schedules)
            .map_err(|e| fail(LoadErrorKind::Jobs(e)))?;
        if exports.jobs.is_some() || imported.contains(&"jobs") {
            context.jobs = Some(PluginJobs {
                queue: self.jobs.clone(),
                kinds: Arc::new(kinds),
            });
        }
        let uses_sql =
            imported.contains(&"sql") || manifest.capabilities.iter().any(|c| c == "sql");
        if uses_sql {
            let mut db = self
                .sql
                .provision(name)
                .await
                .map_err(|e| fail(LoadErrorKind::Database(e)))?;
            db.limit_rows(limits.max_rows as usize);
            context.sql = Some(db);
        }
        let context = Arc::new(context);
        let applied = self
            .migrate(&pre, &exports, &context)
            .await
            .map_err(|e| fail(LoadErrorKind::Migration(e)))?;
        tracing::info!(
            plugin = name,
            source = source_name,
            version = %manifest.version,
            routes = manifest.routes.len(),
            migrations_applied = ?applied,
            hash = &hash[..12],
            elapsed_ms = started.elapsed().as_millis() as u64,
            "plugin loaded"
        );
        let routes = manifest
            .routes
            .iter()
            .map(|r| self.metrics.route(name, &r.path, &r.method))
            .collect();
        // Validated above: every route's options parse.
        let options: Vec<RouteOptions> = manifest
            .routes
            .iter()
            .map(|r| RouteOptions::parse(&r.method, &r.path, &r.options).unwrap_or_default())
            .collect();
        let response_caches = options
            .iter()
            .zip(&manifest.routes)
            .map(|(o, r)| {
                o.cache
                    .clone()
                    .map(|policy| (policy, self.metrics.response_cache(name, &r.path)))
            })
            .collect();
        Ok(Arc::new(LoadedPlugin {
            routes,
            response_caches,
            options,
            mount,
            concurrency: Arc::new(Semaphore::new(limits.max_concurrency as usize)),
            queued: std::sync::atomic::AtomicU32::new(0),
            context,
            manifest,
            hash,
            pre,
            exports,
            host: self.clone(),
        }))
    }

    async fn compile(&self, bytes: Vec<u8>) -> Result<Component, LoadErrorKind> {
        if !bytes.starts_with(b"\0asm") {
            return Err(LoadErrorKind::NotComponent(
                "the file is not WebAssembly (no `\\0asm` header)".into(),
            ));
        }
        if bytes.get(4..8) == Some(&[1, 0, 0, 0]) {
            return Err(LoadErrorKind::NotComponent(
                "this is a core WebAssembly module; build the plugin for wasm32-wasip2 so it \
                 is a component"
                    .into(),
            ));
        }
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || Component::new(&engine, &bytes))
            .await
            .map_err(|e| LoadErrorKind::NotComponent(format!("compilation panicked: {e}")))?
            .map_err(|e| LoadErrorKind::NotComponent(format!("{e:#}")))
    }
}

/// The bytes of the component `config` names (embedded or read from its
/// file).
pub async fn read_component(config: &PluginConfig) -> Result<Vec<u8>, LoadErrorKind> {
    match config.source().map_err(LoadErrorKind::Source)? {
        PluginSource::Builtin(bytes) => Ok(bytes.to_vec()),
        PluginSource::File(path) => tokio::fs::read(&path).await.map_err(LoadErrorKind::Read),
    }
}

impl PluginHost {
    /// Links the component against the host's imports and finds its
    /// exports: `manifest` and `http-handler` are required, the rest optional.
    fn pre_instantiate(
        &self,
        component: &Component,
        kind: World,
    ) -> Result<(InstancePre<HostState>, Exports), LoadErrorKind> {
        let world = |e: wasmtime::Error| LoadErrorKind::World(format!("{e:#}"));
        let pre = self.linker.instantiate_pre(component).map_err(world)?;
        let exports = match kind {
            World::Trellis => Exports {
                manifest: Some(manifest::GuestIndices::new(&pre).map_err(world)?),
                http: Some(http_handler::GuestIndices::new(&pre).map_err(world)?),
                wasi_http: None,
                migrations: migrations::GuestIndices::new(&pre).ok(),
                jobs: job_handler::GuestIndices::new(&pre).ok(),
                batch: batch_handler::GuestIndices::new(&pre).ok(),
            },
            World::WasiHttp => Exports {
                manifest: None,
                http: None,
                wasi_http: Some(ProxyIndices::new(&pre).map_err(world)?),
                migrations: None,
                jobs: None,
                batch: None,
            },
        };
        Ok((pre, exports))
    }

    /// Applies the plugin's migrations that its database has not seen.
    async fn migrate(
        &self,
        pre: &InstancePre<HostState>,
        exports: &Exports,
        context: &Arc<PluginContext>,
    ) -> Result<Vec<u32>, String> {
        let Some(indices) = &exports.migrations else {
            return Ok(Vec::new());
        };
        let mut store = super::call::new_store(
            self,
            context.clone(),
            "migrate".to_string(),
            opentelemetry::Context::new(),
        );
        let call = async {
            let instance = pre.instantiate_async(&mut store).await?;
            indices
                .load(&mut store, &instance)?
                .call_all(&mut store)
                .await
        };
        let list = match tokio::time::timeout(context.limits.deadline, call).await {
            Ok(Ok(list)) => list,
            Ok(Err(err)) => return Err(format!("listing migrations failed: {err:#}")),
            Err(_) => return Err("listing migrations ran past the deadline".into()),
        };
        if list.is_empty() {
            return Ok(Vec::new());
        }
        let Some(db) = &context.sql else {
            return Err("the plugin has migrations but no database: grant it `sql`".into());
        };
        // One node migrates a plugin at a time (across nodes with Redis);
        // the others then find the migrations applied. Without the lock
        // store the transactions still keep a failed migration out.
        let _lease = match self
            .locks
            .acquire_runtime(
                &format!("migrate:{}", context.name),
                MIGRATION_LOCK_TTL,
                MIGRATION_LOCK_TTL,
            )
            .await
        {
            Ok(lease) => Some(lease),
            Err(LockError::Unavailable(why)) => {
                tracing::warn!(plugin = %context.name, %why, "migrating without the migration lock");
                None
            }
            Err(err) => return Err(format!("cannot take the migration lock: {err}")),
        };
        let dialect = self.sql.dialect();
        let migrations: Vec<SqlMigration> = list
            .into_iter()
            .map(|m| SqlMigration {
                id: m.id,
                sql: if dialect == "postgres" {
                    m.postgres
                } else {
                    m.sqlite
                },
                name: m.name,
            })
            .collect();
        db.migrate(&migrations).await.map_err(|e| e.to_string())
    }
}

impl PluginHost {
    /// Checks the kinds and schedules `job-handler` declared (read with
    /// the manifest; `None` without the export) and applies the host's
    /// defaults; adds the operator's schedules for this plugin
    /// (`[[jobs.schedules]]`).
    fn job_kinds(
        &self,
        declared: Option<Result<DeclaredJobs, String>>,
        operator: &[ScheduleConfig],
    ) -> Result<JobKinds, String> {
        let mut kinds = JobKinds::default();
        let Some(declared) = declared else {
            return match operator.first() {
                Some(s) => Err(format!(
                    "schedule `{}` in trellis.toml, but the plugin exports no job-handler",
                    s.name
                )),
                None => Ok(kinds),
            };
        };
        let (declared, schedules) =
            declared.map_err(|err| format!("listing job kinds failed: {err}"))?;
        let config = self.jobs.config();
        for kind in declared {
            if kind.name.is_empty() || kind.name.len() > 100 {
                return Err(format!("kind name `{}` must be 1 to 100 bytes", kind.name));
            }
            let queue = if kind.queue.is_empty() {
                "default".to_string()
            } else {
                kind.queue
            };
            if !crate::jobs::valid_queue(&queue) {
                return Err(format!(
                    "kind `{}`: queue `{queue}` is not 1 to 64 of a-z, 0-9, `-` and `_`",
                    kind.name
                ));
            }
            let timeout = match kind.timeout_ms {
                0 => config.timeout,
                ms => std::time::Duration::from_millis(u64::from(ms)),
            };
            if timeout > config.max_timeout {
                return Err(format!(
                    "kind `{}` asks for a timeout of {}; jobs.max_timeout is {}",
                    kind.name,
                    humantime::format_duration(timeout),
                    humantime::format_duration(config.max_timeout)
                ));
            }
            let spec = KindSpec {
                queue,
                max_attempts: if kind.max_attempts == 0 {
                    config.max_attempts
                } else {
                    kind.max_attempts
                },
                timeout,
                priority: kind.priority,
            };
            if kinds.kinds.insert(kind.name.clone(), spec).is_some() {
                return Err(format!("kind `{}` is declared twice", kind.name));
            }
        }
        let from_operator = operator.iter().map(|s| {
            let payload = s
                .payload
                .as_ref()
                .map(|p| p.to_string().into_bytes())
                .unwrap_or_default();
            (s.name.clone(), s.cron.clone(), s.kind.clone(), payload)
        });
        let from_plugin = schedules
            .into_iter()
            .map(|s| (s.name, s.cron, s.kind, s.payload));
        for (name, cron, kind, payload) in from_plugin.chain(from_operator) {
            let cron =
                crate::jobs::parse_cron(&cron).map_err(|e| format!("schedule `{name}`: {e}"))?;
            if !kinds.kinds.contains_key(&kind) {
                return Err(format!("schedule `{name}` enqueues unknown kind `{kind}`"));
            }
            if kinds.schedules.iter().any(|s| s.name == name) {
                return Err(format!("schedule `{name}` is declared twice"));
            }
            kinds.schedules.push(ScheduleSpec {
                name,
                cron,
                kind,
                payload,
            });
        }
        Ok(kinds)
    }
}

/// The component names only `trellis:plugin` versions this runtime links
/// and exports the interfaces every plugin must: checked before linking so
/// the error says what is wrong instead of which item the linker missed.
/// Which world a component implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum World {
    /// `trellis:plugin`: a manifest, routes, capabilities.
    Trellis,
    /// `wasi:http/proxy`: one `incoming-handler`, mounted at a prefix.
    WasiHttp,
}

/// The `wasi:http` version served to components that export no Trellis
/// interface.
const WASI_HTTP_HANDLER: &str = "wasi:http/incoming-handler@0.2.";

fn check_world(component: &Component, host: &PluginHost) -> Result<World, LoadErrorKind> {
    let ty = component.component_type();
    let names: Vec<(&str, bool)> = ty
        .imports(&host.engine)
        .map(|(name, _)| (name, false))
        .chain(ty.exports(&host.engine).map(|(name, _)| (name, true)))
        .collect();
    for (name, _) in &names {
        let Some((_, version)) = name
            .strip_prefix(CAPABILITY_PACKAGE)
            .and_then(|rest| rest.split_once('@'))
        else {
            continue;
        };
        if let Some(advice) = incompatible(version) {
            return Err(LoadErrorKind::WitVersion {
                found: version.to_string(),
                interface: name.to_string(),
                advice,
            });
        }
    }
    let ours = names
        .iter()
        .any(|(name, export)| *export && capability_of(name).is_some());
    if !ours {
        let handler = names.iter().find(|(name, export)| {
            *export && name.starts_with("wasi:http/") && name.contains("handler@")
        });
        match handler {
            Some((name, _)) if name.starts_with(WASI_HTTP_HANDLER) => return Ok(World::WasiHttp),
            Some((name, _)) => {
                return Err(LoadErrorKind::World(format!(
                    "exports `{name}`; this runtime serves wasi:http components that export \
                     `wasi:http/incoming-handler@0.2.x` (WASI 0.2)"
                )));
            }
            None => {}
        }
    }
    for required in ["manifest", "http-handler"] {
        let exported = names
            .iter()
            .any(|(name, export)| *export && capability_of(name) == Some(required));
        if !exported {
            return Err(LoadErrorKind::MissingExport(required));
        }
    }
    Ok(World::Trellis)
}

/// The routes of a `wasi:http` component mounted at `mount`: every method
/// (`HEAD` through `GET`) on the prefix and every path below it.
fn wasi_http_manifest(name: &str, mount: &str) -> PluginManifest {
    let routes = METHODS
        .iter()
        .filter(|method| **method != "HEAD")
        .flat_map(|method| {
            [
                mount.to_string(),
                format!("{mount}/"),
                format!("{mount}/{{*path}}"),
            ]
            .map(|path| super::Route {
                method: method.to_string(),
                path,
                options: Vec::new(),
            })
        })
        .collect();
    PluginManifest {
        name: name.to_string(),
        version: "wasi:http".to_string(),
        routes,
        capabilities: Vec::new(),
    }
}

/// `None` when a component built against `version` links here; else what
/// to do about it.
fn incompatible(version: &str) -> Option<&'static str> {
    let parse = |v: &str| -> Option<(u64, u64, u64)> {
        let mut parts = v.split('.').map(|p| p.parse::<u64>().ok());
        Some((parts.next()??, parts.next()??, parts.next()??))
    };
    let (Some(found), Some(host)) = (parse(version), parse(WORLD_VERSION)) else {
        return Some(": rebuild it against this runtime's wit/");
    };
    if found.0 == host.0 && found.1 == host.1 && found.2 <= host.2 {
        None
    } else if found > host {
        Some(": upgrade the runtime, or rebuild the plugin against this runtime's SDK")
    } else {
        Some(": rebuild the plugin against this runtime's SDK")
    }
}

/// Every `trellis:plugin/*` interface the component imports must be
/// granted. Returns the capabilities it imports.
fn check_grants(
    component: &Component,
    host: &PluginHost,
    plugin: &str,
    grants: &[String],
) -> Result<Vec<&'static str>, LoadErrorKind> {
    let mut imported = Vec::new();
    for (import, _) in component.component_type().imports(&host.engine) {
        let Some(capability) = capability_of(import) else {
            continue;
        };
        // Types only, and spans that reach nothing but the trace.
        if capability == "types" || capability == "trace" {
            continue;
        }
        if !grants.iter().any(|g| g == capability) {
            return Err(LoadErrorKind::NotGranted {
                capability: capability.to_string(),
                plugin: plugin.to_string(),
            });
        }
        if let Some(known) = CAPABILITIES.iter().find(|c| **c == capability) {
            imported.push(*known);
        }
    }
    Ok(imported)
}

/// `trellis:plugin/config@0.1.0` → `config`.
fn capability_of(import: &str) -> Option<&str> {
    let interface = import.strip_prefix(CAPABILITY_PACKAGE)?;
    Some(interface.split('@').next().unwrap_or(interface))
}

/// What `job-handler` declares: its kinds and its schedules.
type DeclaredJobs = (Vec<job_handler::JobKind>, Vec<job_handler::Schedule>);

/// Instantiates the plugin once, under its limits, to call `describe` and,
/// when it exports `job-handler`, `kinds` and `schedules` (their failure is
/// reported apart, as the job kinds').
async fn read_manifest(
    host: &PluginHost,
    pre: &InstancePre<HostState>,
    exports: &Exports,
    context: &Arc<PluginContext>,
) -> Result<(PluginManifest, Option<Result<DeclaredJobs, String>>), String> {
    let mut store: Store<HostState> = super::call::new_store(
        host,
        context.clone(),
        "load".to_string(),
        opentelemetry::Context::new(),
    );
    let call = async {
        let instance = pre.instantiate_async(&mut store).await?;
        let Some(indices) = &exports.manifest else {
            return Err(wasmtime::Error::msg("the plugin exports no manifest"));
        };
        let guest = indices.load(&mut store, &instance)?;
        let manifest = guest.call_describe(&mut store).await?;
        let Some(indices) = &exports.jobs else {
            return Ok((manifest, None));
        };
        let jobs = async {
            let guest = indices.load(&mut store, &instance)?;
            let kinds = guest.call_kinds(&mut store).await?;
            let schedules = guest.call_schedules(&mut store).await?;
            Ok::<_, wasmtime::Error>((kinds, schedules))
        };
        let jobs = jobs.await.map_err(|err| format!("{err:#}"));
        Ok::<_, wasmtime::Error>((manifest, Some(jobs)))
    };
    match tokio::time::timeout(context.limits.deadline, call).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(err)) => Err(format!("{err:#}")),
        Err(_) => Err(format!(
            "no answer within the deadline of {}",
            humantime::format_duration(context.limits.deadline)
        )),
    }
}

fn validate_manifest(manifest: &PluginManifest, grants: &[String]) -> Result<(), LoadErrorKind> {
    let invalid = |m: String| Err(LoadErrorKind::InvalidManifest(m));
    for capability in &manifest.capabilities {
        if !CAPABILITIES.contains(&capability.as_str()) {
            return invalid(format!(
                "asks for unknown capability `{capability}`; this runtime offers: {}",
                CAPABILITIES.join(", ")
            ));
        }
        if !grants.contains(capability) {
            return Err(LoadErrorKind::NotGranted {
                capability: capability.clone(),
                plugin: manifest.name.clone(),
            });
        }
    }
    if u32::try_from(manifest.routes.len()).is_err() {
        return invalid("too many routes".into());
    }
    for route in &manifest.routes {
        if !METHODS.contains(&route.method.as_str()) {
            return invalid(format!(
                "route {} has method `{}`; allowed: {}",
                route.path,
                route.method,
                METHODS.join(", ")
            ));
        }
        if !route.path.starts_with('/') || route.path.contains(['?', '#']) {
            return invalid(format!(
                "route path `{}` must start with `/` and have no query or fragment",
                route.path
            ));
        }
        if let Err(message) = RouteOptions::parse(&route.method, &route.path, &route.options) {
            return invalid(message);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_world_version_is_the_wit_package_version() {
        let wit = include_str!("../../../wit/world.wit");
        assert!(wit.contains(&format!("package trellis:plugin@{WORLD_VERSION};")));
    }

    #[test]
    fn versions_link_within_the_minor_and_up_to_the_runtime() {
        assert_eq!(incompatible("0.1.0"), None);
        assert_eq!(incompatible(WORLD_VERSION), None);
        assert!(incompatible("0.1.99").is_some_and(|a| a.contains("upgrade the runtime")));
        assert!(incompatible("0.2.0").is_some_and(|a| a.contains("upgrade the runtime")));
        assert!(incompatible("0.0.9").is_some_and(|a| a.contains("rebuild")));
        assert!(incompatible("1.0").is_some());
    }
}

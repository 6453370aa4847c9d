//! Loading a plugin version: read the component, compile it (on the blocking
//! pool, through the compile cache), check its imports against the grants,
//! pre-instantiate it, read its manifest in a sandboxed call, validate it.
//!
//! Layer: `plugin`; it may call `capability` (the bindings, the capabilities
//! configured for the plugin), `config` and `monitor`, nothing above
//! `plugin`. The manifest's reading and checks live in `manifest`.

use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use wasmtime::component::Component;

use wasmtime::component::InstancePre;
use wasmtime_wasi_http::p2::bindings::ProxyIndices;

use super::manifest::manifest_of;
use super::route_options::{RouteCache, RouteOptions};
use super::{Exports, LoadedPlugin, PluginHost};
use crate::capability::bindings::{
    PluginManifest, batch_handler, http_handler, job_handler, manifest, migrations,
};
use crate::capability::{Capabilities, HostState, PluginContext, PluginSetup};
use crate::config::{Limits, PluginConfig, PluginSource, ScheduleConfig};
use crate::monitor::{ResponseCacheStats, RouteStats};

/// The WIT package whose interfaces are capabilities.
const CAPABILITY_PACKAGE: &str = "trellis:plugin/";

/// The version of the `trellis:plugin` package this runtime implements
/// (`wit/world.wit`); components built against an earlier 0.1 link too.
pub const WORLD_VERSION: &str = "0.1.7";

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
    #[error("does not implement the {world} world: {detail}")]
    World {
        /// `trellis:plugin` or `wasi:http/proxy`.
        world: &'static str,
        /// What the linker said.
        detail: String,
    },
    /// The component imports an interface the runtime does not provide.
    #[error("imports `{import}`, which this runtime does not provide{hint}")]
    MissingImport {
        /// The import, as the component names it.
        import: String,
        /// What provides it, or what to do instead.
        hint: String,
    },
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
    /// Its routes conflict with another live plugin's.
    #[error("{0}")]
    Routes(String),
    /// A capability refused it (its database is unavailable, a migration
    /// failed, its job kinds are invalid, ...); the message says which.
    #[error("{0}")]
    Capability(String),
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

        let mount = (world == World::WasiHttp).then(|| config.mount(name));
        let preliminary = PluginSetup {
            name,
            config,
            limits: &limits,
            imports: &imported,
            asks: &[],
            jobs: None,
            schedules: operator_schedules,
            migrations: None,
        };
        let (manifest, declared) =
            manifest_of(self, &pre, &exports, &preliminary, mount.as_deref())
                .await
                .map_err(fail)?;
        check_routes(&manifest.routes).map_err(|e| fail(LoadErrorKind::Routes(e)))?;
        let setup = PluginSetup {
            name,
            config,
            limits: &limits,
            imports: &imported,
            asks: &manifest.capabilities,
            jobs: declared.jobs,
            schedules: operator_schedules,
            migrations: declared.migrations,
        };
        let context = self.plugin_context(&setup).await.map_err(fail)?;
        tracing::info!(
            plugin = name,
            source = source_name,
            version = %manifest.version,
            routes = manifest.routes.len(),
            hash = &hash[..12],
            elapsed_ms = started.elapsed().as_millis() as u64,
            "plugin loaded"
        );
        if mount.is_some() && config.reuse > 1 {
            tracing::warn!(
                plugin = name,
                "`reuse` does not apply to a wasi:http component: each request gets a fresh instance"
            );
        }
        let tables = self.route_tables(name, &manifest);
        Ok(Arc::new(LoadedPlugin {
            routes: tables.routes,
            response_caches: tables.response_caches,
            options: tables.options,
            // Mounted components get a fresh instance per request.
            warm: mount
                .is_none()
                .then(|| super::warm::WarmPool::new(config.reuse, config.reuse_idle))
                .flatten(),
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

    /// The plugin's context: its capabilities configured for `setup`
    /// ([`Capabilities::configure`]), its metrics, tracer and error groups.
    async fn plugin_context(
        &self,
        setup: &PluginSetup<'_>,
    ) -> Result<Arc<PluginContext>, LoadErrorKind> {
        let capabilities = self
            .capabilities
            .configure(setup)
            .await
            .map_err(LoadErrorKind::Capability)?;
        Ok(Arc::new(PluginContext {
            name: setup.name.to_string(),
            limits: *setup.limits,
            stats: self.metrics.plugin(setup.name),
            tracer: self.tracing.tracer().clone(),
            errors: self.errors.clone(),
            capabilities,
        }))
    }

    /// Per route of `manifest`, in its order: the metric handles, the
    /// options it declares, and its response cache with its metrics.
    fn route_tables(&self, name: &str, manifest: &PluginManifest) -> RouteTables {
        let routes = manifest
            .routes
            .iter()
            .map(|r| self.metrics.route(name, &r.path, &r.method))
            .collect();
        // Validated when the manifest was read: every route's options parse.
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
        RouteTables {
            routes,
            response_caches,
            options,
        }
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

/// What a loaded plugin keeps per route, in manifest order.
struct RouteTables {
    routes: Vec<RouteStats>,
    response_caches: Vec<Option<(RouteCache, ResponseCacheStats)>>,
    options: Vec<RouteOptions>,
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
        let name = match kind {
            World::Trellis => "trellis:plugin",
            World::WasiHttp => "wasi:http/proxy",
        };
        let world = |e: wasmtime::Error| {
            missing_import(&e).unwrap_or_else(|| LoadErrorKind::World {
                world: name,
                detail: format!("{e:#}"),
            })
        };
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
}

/// The import the linker found no implementation of, named, with what
/// would provide it.
fn missing_import(err: &wasmtime::Error) -> Option<LoadErrorKind> {
    let text = format!("{err:#}");
    let at = text
        .find("imports instance `")
        .map(|i| i + "imports instance `".len())?;
    let import = text[at..].split('`').next()?.to_string();
    let hint = if import.starts_with("wasi:keyvalue/") {
        ": this runtime links wasi:keyvalue/{store,atomics,batch}@0.2.0-draft (the version wasmtime ships), under the `keyvalue` grant"
    } else if import.starts_with("wasi:config/") {
        ": this runtime links wasi:config/store@0.2.0-rc.1 (the version wasmtime ships), over [plugins.<name>.config]"
    } else if import.starts_with(CAPABILITY_PACKAGE) {
        ": it may be newer than this runtime; rebuild the plugin against this runtime's SDK"
    } else if import.starts_with("wasi:") {
        ": this runtime links WASI 0.2 (wasi:cli, wasi:clocks, wasi:random, wasi:io, wasi:filesystem and wasi:sockets without access, wasi:http)"
    } else {
        ""
    };
    Some(LoadErrorKind::MissingImport {
        import,
        hint: hint.to_string(),
    })
}

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

/// The component names only `trellis:plugin` versions this runtime links
/// and exports the interfaces every plugin must: checked before linking so
/// the error says what is wrong instead of which item the linker missed.
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
                return Err(LoadErrorKind::World {
                    world: "wasi:http/proxy",
                    detail: format!(
                        "exports `{name}`; this runtime serves wasi:http components that \
                         export `wasi:http/incoming-handler@0.2.x` (WASI 0.2)"
                    ),
                });
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
        // Types only (not a capability), and capabilities that reach
        // nothing outside the instance, need no grant.
        if capability == "types" || Capabilities::needs_grant(capability) == Some(false) {
            continue;
        }
        if !grants.iter().any(|g| g == capability) {
            return Err(LoadErrorKind::NotGranted {
                capability: capability.to_string(),
                plugin: plugin.to_string(),
            });
        }
        if let Some((known, _)) = Capabilities::LIST.iter().find(|(c, _)| *c == capability) {
            imported.push(*known);
        }
    }
    Ok(imported)
}

/// `trellis:plugin/config@0.1.0` → `config`.
fn capability_of(import: &str) -> Option<&str> {
    // The standard interface over the same settings.
    if import.starts_with("wasi:config/store@") {
        return Some("config");
    }
    // The version linked; another is a missing import, named as such.
    if import.starts_with("wasi:keyvalue/") && import.ends_with("@0.2.0-draft") {
        return Some("keyvalue");
    }
    let interface = import.strip_prefix(CAPABILITY_PACKAGE)?;
    Some(interface.split('@').next().unwrap_or(interface))
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

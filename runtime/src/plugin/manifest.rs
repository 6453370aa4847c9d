//! A plugin's manifest at load time: read from the component in a
//! sandboxed call (with what its exports declare beside it: job kinds,
//! schedules, migrations) and validated, or for a `wasi:http` component
//! made up from its mount.
//!
//! Layer: `plugin` (a step of `load`); it may call `capability` (the
//! unconfigured capability state, the bindings) and `config`, nothing
//! above `plugin`.

use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::InstancePre;

use super::load::LoadErrorKind;
use super::route_options::RouteOptions;
use super::{Exports, PluginHost};
use crate::capability::bindings::PluginManifest;
use crate::capability::bindings::migrations::Migration;
use crate::capability::{DeclaredJobs, HostState, PluginContext, PluginSetup};
use crate::config::CAPABILITIES;

/// HTTP methods a route may declare.
/// The method of a route that takes any method no other route of its path
/// names (a mounted `wasi:http` component's).
pub const ANY_METHOD: &str = "*";

const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// The manifest of the plugin `setup` describes, and what its exports
/// declare: read from the component and validated against its grants, or
/// (a `wasi:http` component mounted at `mount`) made up.
pub(super) async fn manifest_of(
    host: &PluginHost,
    pre: &InstancePre<HostState>,
    exports: &Exports,
    setup: &PluginSetup<'_>,
    mount: Option<&str>,
) -> Result<(PluginManifest, Declared), LoadErrorKind> {
    match mount {
        None => {
            let (manifest, declared) = read_manifest(host, pre, exports, setup)
                .await
                .map_err(LoadErrorKind::Manifest)?;
            validate_manifest(&manifest, &setup.config.grants)?;
            Ok((manifest, declared))
        }
        Some(mount) => Ok((wasi_http_manifest(setup.name, mount), Declared::default())),
    }
}

/// The routes of a `wasi:http` component mounted at `mount`: every method
/// on the prefix and every path below it — the usual ones by name (`HEAD`
/// through `GET`), any other (`TRACE`, `PROPFIND`, an extension method)
/// through the router's wildcard method [`ANY_METHOD`].
fn wasi_http_manifest(name: &str, mount: &str) -> PluginManifest {
    let routes = METHODS
        .iter()
        .filter(|method| **method != "HEAD")
        .chain(&[ANY_METHOD])
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

/// What a plugin's exports declare beside its manifest, for its
/// capabilities: job kinds and schedules, and migrations (each `None`
/// without the export; a failed listing is reported by its capability).
#[derive(Default)]
pub(super) struct Declared {
    pub(super) jobs: Option<Result<DeclaredJobs, String>>,
    pub(super) migrations: Option<Result<Vec<Migration>, String>>,
}

/// Instantiates the plugin once, under its limits and with the capability
/// state its config gives (its settings; no database or job queue yet), to
/// call `describe` and, where exported, `job-handler`'s `kinds`
/// and `schedules` and `migrations`' `all`.
async fn read_manifest(
    host: &PluginHost,
    pre: &InstancePre<HostState>,
    exports: &Exports,
    plugin: &PluginSetup<'_>,
) -> Result<(PluginManifest, Declared), String> {
    let limits = *plugin.limits;
    let context = Arc::new(PluginContext {
        name: plugin.name.to_string(),
        limits,
        stats: host.metrics.plugin(plugin.name),
        tracer: host.tracing.tracer().clone(),
        errors: host.errors.clone(),
        capabilities: host.capabilities.unconfigured(plugin),
    });
    let mut store: Store<HostState> = super::call::new_store(
        host,
        context,
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
        let mut declared = Declared::default();
        if let Some(indices) = &exports.jobs {
            let jobs = async {
                let guest = indices.load(&mut store, &instance)?;
                let kinds = guest.call_kinds(&mut store).await?;
                let schedules = guest.call_schedules(&mut store).await?;
                Ok::<_, wasmtime::Error>((kinds, schedules))
            };
            declared.jobs = Some(jobs.await.map_err(|err| format!("{err:#}")));
        }
        if let Some(indices) = &exports.migrations {
            let list = async {
                indices
                    .load(&mut store, &instance)?
                    .call_all(&mut store)
                    .await
            };
            declared.migrations = Some(list.await.map_err(|err| format!("{err:#}")));
        }
        Ok::<_, wasmtime::Error>((manifest, declared))
    };
    match tokio::time::timeout(limits.deadline, call).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(err)) => Err(format!("{err:#}")),
        Err(_) => Err(format!(
            "no answer within the deadline of {}",
            humantime::format_duration(limits.deadline)
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

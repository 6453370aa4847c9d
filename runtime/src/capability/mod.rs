//! The capability seam: everything a guest can reach beyond its own
//! memory. One module per capability (`log`, `config`, `trace`, `sql`,
//! `cache`, `lock`, `jobs`, `outbound-http`, and the standard `wasi`,
//! `wasi:http` and `wasi:keyvalue` interfaces), each implementing [`Capability`] — the host side of its
//! WIT interface, its runtime service, its per-plugin and per-instance
//! state, and what it adds around a guest call. The list is assembled
//! once, in the [`capabilities!`] call below; `plugin` drives the phases
//! through [`Capabilities`] and never names a capability.
//!
//! Layer: below `plugin`, above `alerts`, `backend`, `monitor` and
//! `config`. Nothing here knows hyper or routing. Grants are enforced when
//! a plugin loads: a component that imports an interface the operator did
//! not grant does not load.
//!
//! Adding a capability: a module with a type implementing [`Capability`],
//! one line in [`capabilities!`] below, its grant name in
//! [`crate::config::CAPABILITIES`] when it needs a grant, and its WIT.

pub mod bindings;
pub mod cache;
pub mod config;
pub mod jobs;
pub mod keyvalue;
pub mod lock;
pub mod log;
pub mod outbound_http;
pub mod sql;
mod state;
pub mod trace;
pub mod wasi;
pub mod wasi_http;

use std::future::Future;

use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, TraceContextExt};
use wasmtime::component::Linker;

use crate::backend::Backends;
use crate::config::{Config, Limits, PluginConfig, ScheduleConfig};
pub use state::{HostState, PluginContext};

/// One capability, in the phases of a plugin's life (after Spin's
/// factors): [`start`](Capability::start) once per host,
/// [`link`](Capability::link) once per engine,
/// [`configure`](Capability::configure) once per plugin version,
/// [`prepare`](Capability::prepare) once per instance, and
/// [`before_call`](Capability::before_call) /
/// [`after_call`](Capability::after_call) /
/// [`annotate`](Capability::annotate) around each guest call.
pub trait Capability: Sized + Send + Sync + 'static {
    /// The interface it serves (`trellis:plugin/<NAME>`) and the name an
    /// operator grants.
    const NAME: &'static str;
    /// Whether importing it needs a grant. Interfaces that reach nothing
    /// outside the instance and its own trace do not.
    const NEEDS_GRANT: bool = true;

    /// What it keeps per plugin version, shared by its instances.
    type Plugin: Send + Sync + 'static;
    /// What it keeps per instance, dropped with it.
    type Instance: Send + 'static;

    /// Its runtime service, built once per host from the config and the
    /// node's backends.
    fn start(runtime: &Runtime<'_>) -> impl Future<Output = Result<Self, String>> + Send;

    /// Adds the host side of its interfaces to the linker.
    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()>;

    /// Its state for a plugin version being loaded. An error stops the
    /// load; its text is the load error's.
    fn configure(
        &self,
        plugin: &PluginSetup<'_>,
    ) -> impl Future<Output = Result<Self::Plugin, String>> + Send;

    /// Its state for a plugin that is not configured yet, from what its
    /// config says (`plugin` has no manifest, job kinds or migrations yet):
    /// the instance that reads a plugin's manifest has it.
    fn unconfigured(&self, plugin: &PluginSetup<'_>) -> Self::Plugin;

    /// Its state for a new instance of a plugin.
    fn prepare(&self, plugin: &Self::Plugin, limits: &Limits) -> Self::Instance;

    /// Its state for the next request of a warm instance (see
    /// `plugin::warm`): by default a new one, as [`Capability::prepare`]
    /// makes. A capability whose state the guest holds handles to (the
    /// WASI context's streams) keeps it, and renews only what belongs to
    /// one request.
    fn renew(&self, plugin: &Self::Plugin, limits: &Limits, instance: &mut Self::Instance) {
        *instance = self.prepare(plugin, limits);
    }

    /// Before a guest call, with what the call carries.
    fn before_call(
        &self,
        _context: &PluginContext,
        _instance: &mut Self::Instance,
        _call: &Call<'_>,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// After a guest call: `answered` when the guest returned (it did not
    /// trap or run out of time).
    fn after_call(
        &self,
        _context: &PluginContext,
        _instance: &mut Self::Instance,
        _call: &Call<'_>,
        _answered: bool,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Adds its headers to a response the guest answered with.
    fn annotate(
        &self,
        _context: &PluginContext,
        _instance: &Self::Instance,
        _response: &mut bindings::GuestResponse,
    ) {
    }
}

/// What [`Capability::start`] builds from.
#[derive(Debug, Clone, Copy)]
pub struct Runtime<'a> {
    /// The node's config.
    pub config: &'a Config,
    /// Its storage engines.
    pub backends: &'a Backends,
}

/// A plugin version being loaded, as [`Capability::configure`] sees it.
#[derive(Debug)]
pub struct PluginSetup<'a> {
    /// The operator's name for it.
    pub name: &'a str,
    /// Its `[plugins.<name>]` table.
    pub config: &'a PluginConfig,
    /// Its limits.
    pub limits: &'a Limits,
    /// The capabilities its component imports.
    pub imports: &'a [&'static str],
    /// The capabilities its manifest asks for.
    pub asks: &'a [String],
    /// What its `job-handler` export declares (`None` without one).
    pub jobs: Option<Result<DeclaredJobs, String>>,
    /// The operator's schedules for it (`[[jobs.schedules]]`).
    pub schedules: &'a [ScheduleConfig],
    /// What its `migrations` export lists (`None` without one).
    pub migrations: Option<Result<Vec<bindings::migrations::Migration>, String>>,
}

/// What `job-handler` declares: its kinds and its schedules.
pub type DeclaredJobs = (
    Vec<bindings::job_handler::JobKind>,
    Vec<bindings::job_handler::Schedule>,
);

impl PluginSetup<'_> {
    /// Whether the plugin uses capability `name`: its component imports
    /// it, or its manifest asks for it.
    pub fn uses(&self, name: &str) -> bool {
        self.imports.contains(&name) || self.asks.iter().any(|c| c == name)
    }
}

/// One guest call, as [`Capability::before_call`] and
/// [`Capability::after_call`] see it.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The (first) request, for a request; `None` for a job.
    pub request: Option<&'a bindings::GuestRequest>,
    /// What the HTTP layer attached to the request (e.g. an atomic
    /// batch's transaction).
    pub extensions: &'a http::Extensions,
}

/// Declares the capability list: the services, the per-plugin and
/// per-instance state, and each phase run over every capability in list
/// order.
macro_rules! capabilities {
    ($($field:ident: $capability:ty,)*) => {
        /// Every capability's runtime service.
        #[derive(Debug)]
        pub struct Capabilities {
            $(
                #[doc = concat!("`", stringify!($field), "`.")]
                pub $field: $capability,
            )*
        }

        /// Every capability's state for one plugin version.
        #[derive(Debug)]
        pub struct PluginStates {
            $(
                #[doc = concat!("`", stringify!($field), "`.")]
                pub $field: <$capability as Capability>::Plugin,
            )*
        }

        /// Every capability's state for one instance.
        #[allow(missing_debug_implementations)]
        pub struct InstanceStates {
            $(
                #[doc = concat!("`", stringify!($field), "`.")]
                pub $field: <$capability as Capability>::Instance,
            )*
        }

        impl Capabilities {
            /// Each capability's name and whether it needs a grant.
            pub const LIST: &[(&str, bool)] = &[
                $((<$capability as Capability>::NAME, <$capability as Capability>::NEEDS_GRANT),)*
            ];

            /// Starts every capability's service.
            pub async fn start(runtime: &Runtime<'_>) -> Result<Capabilities, String> {
                Ok(Capabilities {
                    $($field: <$capability>::start(runtime).await?,)*
                })
            }

            /// Links every capability's interfaces.
            pub fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
                bindings::types::add_to_linker::<HostState, wasmtime::component::HasSelf<HostState>>(
                    linker,
                    |state| state,
                )?;
                $(<$capability>::link(linker)?;)*
                Ok(())
            }

            /// Every capability's state for a plugin version, in list order;
            /// the first error stops the load.
            pub async fn configure(&self, plugin: &PluginSetup<'_>) -> Result<PluginStates, String> {
                Ok(PluginStates {
                    $($field: self.$field.configure(plugin).await?,)*
                })
            }

            /// Every capability's state for a plugin not configured yet.
            pub fn unconfigured(&self, plugin: &PluginSetup<'_>) -> PluginStates {
                PluginStates {
                    $($field: self.$field.unconfigured(plugin),)*
                }
            }

            /// Every capability's state for a new instance.
            pub fn prepare(&self, plugin: &PluginStates, limits: &Limits) -> InstanceStates {
                InstanceStates {
                    $($field: self.$field.prepare(&plugin.$field, limits),)*
                }
            }

            /// Every capability's state renewed for a warm instance's
            /// next request ([`Capability::renew`]).
            pub fn renew(&self, plugin: &PluginStates, limits: &Limits, instance: &mut InstanceStates) {
                $(self.$field.renew(&plugin.$field, limits, &mut instance.$field);)*
            }

            /// Runs every capability's [`Capability::before_call`].
            pub async fn before_call(&self, state: &mut HostState, call: &Call<'_>) {
                // Disjoint fields: the plugin is read while its instance
                // state is written, with no clone of the `Arc` per call.
                let HostState { plugin, instance, .. } = state;
                $(self.$field.before_call(plugin, &mut instance.$field, call).await;)*
            }

            /// Runs every capability's [`Capability::after_call`].
            pub async fn after_call(&self, state: &mut HostState, call: &Call<'_>, answered: bool) {
                let HostState { plugin, instance, .. } = state;
                $(self.$field.after_call(plugin, &mut instance.$field, call, answered).await;)*
            }

            /// Runs every capability's [`Capability::annotate`].
            pub fn annotate(&self, state: &HostState, response: &mut bindings::GuestResponse) {
                $(self.$field.annotate(&state.plugin, &state.instance.$field, response);)*
            }
        }
    };
}

// The list. Order matters where a phase has effects: `configure` runs top
// to bottom, and `sql` comes last because it migrates the plugin's
// database, which only a version that passed every other check may do.
capabilities! {
    wasi: wasi::Wasi,
    wasi_http: wasi_http::WasiHttp,
    outbound_http: outbound_http::OutboundHttp,
    log: log::Log,
    config: config::Settings,
    trace: trace::Trace,
    cache: cache::Cache,
    keyvalue: keyvalue::Buckets,
    lock: lock::Lock,
    jobs: jobs::Jobs,
    sql: sql::Sql,
}

impl Capabilities {
    /// Whether capability `name` exists, and if so whether it needs a
    /// grant.
    pub fn needs_grant(name: &str) -> Option<bool> {
        Capabilities::LIST
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, needs)| *needs)
    }
}

impl HostState {
    /// A client span for one host call under the guest call's span, with
    /// `attributes`, when it is recorded; `None` outside a request (loading,
    /// migrations) and in one whose spans are not recorded.
    pub(crate) fn host_span(
        &self,
        name: &'static str,
        attributes: impl FnOnce() -> Vec<KeyValue>,
    ) -> Option<opentelemetry::Context> {
        if !crate::monitor::records_children(&self.trace) {
            return None;
        }
        Some(crate::monitor::child_span(
            &self.plugin.tracer,
            &self.trace,
            name,
            SpanKind::Client,
            || {
                let mut attributes = attributes();
                attributes.push(KeyValue::new("trellis.plugin", self.plugin.name.clone()));
                attributes
            },
        ))
    }
}

/// Ends a host call's span, marked failed with `error` when given.
pub(crate) fn end_span(span: Option<opentelemetry::Context>, error: Option<&str>) {
    if let Some(cx) = span {
        if let Some(error) = error {
            cx.span()
                .set_status(opentelemetry::trace::Status::error(error.to_string()));
        }
        cx.span().end();
    }
}

/// `trellis:plugin/types` has only types; its host trait is empty.
impl bindings::types::Host for HostState {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grantable_capabilities_are_the_ones_config_accepts() {
        let grantable: Vec<&str> = Capabilities::LIST
            .iter()
            .filter(|(_, needs)| *needs)
            .map(|(name, _)| *name)
            .collect();
        let mut sorted = grantable.clone();
        sorted.sort_unstable();
        let mut accepted = crate::config::CAPABILITIES.to_vec();
        accepted.sort_unstable();
        assert_eq!(sorted, accepted);
    }
}

//! The one host-side `bindgen!` of the plugin world. Generated code stays in
//! this module; the rest of the crate uses the items re-exported here.

#[allow(missing_docs, missing_debug_implementations)]
mod generated {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "plugin",
        imports: {
            "trellis:plugin/sql": async | trappable,
            "trellis:plugin/trace": async | trappable,
            "trellis:plugin/cache": async | trappable,
            "trellis:plugin/lock": async | trappable,
            "trellis:plugin/jobs": async | trappable,
            default: async,
        },
        exports: { default: async },
        with: {
            "trellis:plugin/sql.transaction": crate::capability::sql::SqlTransaction,
            "trellis:plugin/trace.span": crate::capability::trace::GuestSpan,
            "trellis:plugin/cache.loader": crate::capability::cache::GuestLoader,
            "trellis:plugin/lock.lease": crate::capability::lock::GuestLease,
        },
    });
}

pub use generated::Plugin;
pub use generated::exports::trellis::plugin::manifest::{PluginManifest, Route};
pub use generated::exports::trellis::plugin::{
    batch_handler, http_handler, job_handler, manifest, migrations,
};
pub use generated::trellis::plugin::types::{Request as GuestRequest, Response as GuestResponse};
pub use generated::trellis::plugin::{
    cache, config, jobs, lock, log, outbound_http, sql, trace, types,
};

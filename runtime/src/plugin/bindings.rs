//! The one host-side `bindgen!` of the plugin world. Generated code stays in
//! this module; the rest of the crate uses the items re-exported here.

#[allow(missing_docs, missing_debug_implementations)]
mod generated {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "plugin",
        imports: { default: async },
        exports: { default: async },
    });
}

pub use generated::exports::trellis::plugin::manifest::{PluginManifest, Route};
pub use generated::trellis::plugin::types::{Request as GuestRequest, Response as GuestResponse};
pub use generated::trellis::plugin::{config, log, types};
pub use generated::{Plugin, PluginPre};

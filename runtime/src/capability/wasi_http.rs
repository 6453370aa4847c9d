//! `wasi:http` for mounted components (`wasmtime-wasi-http`'s p2 host):
//! the types and `outgoing-handler` a `wasi:http/proxy` component imports.
//! Serving one (`incoming-handler`) is `plugin::wasi_http`'s. What an
//! outgoing request may do is `outbound_http`'s: its hooks send it (or deny
//! it, for a plugin without the grant).

use wasmtime::component::Linker;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::{Capability, HostState, PluginSetup, Runtime};
use crate::config::Limits;

/// The `wasi:http` capability: no service, no grant.
#[derive(Debug)]
pub struct WasiHttp;

/// One instance's `wasi:http` state.
#[allow(missing_debug_implementations)]
pub struct WasiHttpInstance {
    ctx: WasiHttpCtx,
}

impl Capability for WasiHttp {
    const NAME: &'static str = "wasi:http";
    const NEEDS_GRANT: bool = false;
    type Plugin = ();
    type Instance = WasiHttpInstance;

    async fn start(_runtime: &Runtime<'_>) -> Result<Self, String> {
        Ok(WasiHttp)
    }

    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
    }

    async fn configure(&self, _plugin: &PluginSetup<'_>) -> Result<(), String> {
        Ok(())
    }

    fn unconfigured(&self, _plugin: &PluginSetup<'_>) {}

    fn prepare(&self, _plugin: &(), _limits: &Limits) -> WasiHttpInstance {
        WasiHttpInstance {
            ctx: WasiHttpCtx::new(),
        }
    }

    /// Kept with the WASI context it belongs with.
    fn renew(&self, _plugin: &(), _limits: &Limits, _instance: &mut WasiHttpInstance) {}
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        let outbound = &mut self.instance.outbound_http;
        outbound.attach(&self.plugin, &self.trace);
        WasiHttpCtxView {
            ctx: &mut self.instance.wasi_http.ctx,
            table: &mut self.table,
            hooks: outbound,
        }
    }
}

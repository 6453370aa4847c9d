//! `wasi:http` for mounted components (`wasmtime-wasi-http`'s p2 host):
//! the types and `outgoing-handler` a `wasi:http/proxy` component imports.
//! Serving one (`incoming-handler`) is `plugin::wasi_http`'s. Plugins make
//! no outgoing HTTP requests: `outgoing-handler` links, but every request
//! is denied.

use wasmtime::component::Linker;
use wasmtime_wasi_http::{WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use super::{Capability, HostState, PluginSetup, Runtime};
use crate::config::Limits;

/// The `wasi:http` capability: no service, no grant.
#[derive(Debug)]
pub struct WasiHttp;

/// One instance's `wasi:http` state.
#[allow(missing_debug_implementations)]
pub struct WasiHttpInstance {
    ctx: WasiHttpCtx,
    hooks: NoOutgoingHttp,
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
            hooks: NoOutgoingHttp,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.instance.wasi_http.ctx,
            table: &mut self.table,
            hooks: &mut self.instance.wasi_http.hooks,
        }
    }
}

/// Denies every outgoing request.
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

//! The standard WASI interfaces every component gets (`wasmtime-wasi`'s
//! p2 host): clocks, random, and a stdout that is dropped and a stderr
//! that is captured — nothing else is granted (no files, sockets or
//! environment). What a guest wrote to stderr last (a panic message) goes
//! into the log line of its fault.

use wasmtime::component::Linker;
use wasmtime_wasi::p2::pipe::{MemoryOutputPipe, SinkOutputStream};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::{Capability, HostState, PluginSetup, Runtime};
use crate::config::Limits;

/// Bytes of guest stderr kept per call (panic messages land there).
const STDERR_CAPACITY: usize = 16 * 1024;

/// The `wasi` capability: no service, no grant.
#[derive(Debug)]
pub struct Wasi;

/// One instance's WASI context and its captured stderr.
#[allow(missing_debug_implementations)]
pub struct WasiInstance {
    ctx: WasiCtx,
    stderr: MemoryOutputPipe,
}

impl Capability for Wasi {
    const NAME: &'static str = "wasi";
    const NEEDS_GRANT: bool = false;
    type Plugin = ();
    type Instance = WasiInstance;

    async fn start(_runtime: &Runtime<'_>) -> Result<Self, String> {
        Ok(Wasi)
    }

    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        wasmtime_wasi::p2::add_to_linker_async(linker)
    }

    async fn configure(&self, _plugin: &PluginSetup<'_>) -> Result<(), String> {
        Ok(())
    }

    fn unconfigured(&self, _plugin: &PluginSetup<'_>) {}

    fn prepare(&self, _plugin: &(), _limits: &Limits) -> WasiInstance {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let ctx = WasiCtx::builder()
            .stdout(SinkOutputStream)
            .stderr(stderr.clone())
            .build();
        WasiInstance { ctx, stderr }
    }
}

impl HostState {
    /// The last line the guest wrote to stderr, e.g. a panic message.
    pub(crate) fn stderr_tail(&self) -> Option<String> {
        let bytes = self.instance.wasi.stderr.contents();
        let text = String::from_utf8_lossy(&bytes);
        let tail = text.trim_end().rsplit('\n').next()?.trim();
        (!tail.is_empty()).then(|| tail.to_string())
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.instance.wasi.ctx,
            table: &mut self.table,
        }
    }
}

//! The standard WASI interfaces every component gets (`wasmtime-wasi`'s
//! p2 host): clocks, random, the environment variables of its
//! `[plugins.<name>] env` table (no other), and a stdout and stderr whose
//! lines are logged at info under the plugin's name (target
//! `trellis::guest`), at most [`LINES_PER_SECOND`] a second per plugin
//! beyond a burst of [`BURST`]; what a flood loses is counted in the next
//! line that gets through. Nothing else is granted (no files or sockets).
//! What a guest wrote to stderr last (a panic message) also goes into the
//! log line of its fault.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime::component::Linker;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::{Capability, HostState, PluginSetup, Runtime};
use crate::config::Limits;
use crate::monitor::RateLimit;

/// Bytes of guest stderr kept per instance (panic messages land there).
const STDERR_CAPACITY: usize = 16 * 1024;
/// Lines a plugin's instances may log per second, together.
pub const LINES_PER_SECOND: u32 = 50;
/// Lines logged at once before the rate applies.
pub const BURST: u32 = 200;
/// A line longer than this is logged in pieces.
const MAX_LINE: usize = 4096;

/// The `wasi` capability: no service, no grant.
#[derive(Debug)]
pub struct Wasi;

/// A plugin's environment and its output's rate limit, shared by its
/// instances.
#[derive(Debug)]
pub struct WasiPlugin {
    name: Arc<str>,
    env: Vec<(String, String)>,
    budget: Arc<Budget>,
}

/// One instance's WASI context and its captured stderr.
#[allow(missing_debug_implementations)]
pub struct WasiInstance {
    ctx: WasiCtx,
    stderr: GuestOutput,
}

impl Capability for Wasi {
    const NAME: &'static str = "wasi";
    const NEEDS_GRANT: bool = false;
    type Plugin = WasiPlugin;
    type Instance = WasiInstance;

    async fn start(_runtime: &Runtime<'_>) -> Result<Self, String> {
        Ok(Wasi)
    }

    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        wasmtime_wasi::p2::add_to_linker_async(linker)
    }

    async fn configure(&self, plugin: &PluginSetup<'_>) -> Result<WasiPlugin, String> {
        Ok(self.unconfigured(plugin))
    }

    fn unconfigured(&self, plugin: &PluginSetup<'_>) -> WasiPlugin {
        WasiPlugin {
            name: Arc::from(plugin.name),
            env: plugin
                .config
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            budget: Arc::new(Budget {
                lines: RateLimit::new(LINES_PER_SECOND, BURST),
                dropped: AtomicU64::new(0),
            }),
        }
    }

    fn prepare(&self, plugin: &WasiPlugin, _limits: &Limits) -> WasiInstance {
        let stdout = GuestOutput::new(plugin, "stdout", 0);
        let stderr = GuestOutput::new(plugin, "stderr", STDERR_CAPACITY);
        let mut builder = WasiCtx::builder();
        builder.stdout(stdout).stderr(stderr.clone());
        if !plugin.env.is_empty() {
            builder.envs(&plugin.env);
        }
        WasiInstance {
            ctx: builder.build(),
            stderr,
        }
    }

    /// The guest holds handles into the WASI context (its stdio streams):
    /// it stays; a fault report sees only the new request's stderr.
    fn renew(&self, _plugin: &WasiPlugin, _limits: &Limits, instance: &mut WasiInstance) {
        instance.stderr.forget_tail();
    }
}

/// A plugin's rate limit for output lines, and what it refused.
#[derive(Debug)]
struct Budget {
    lines: RateLimit,
    /// Lines refused since the last one logged.
    dropped: AtomicU64,
}

impl Budget {
    /// Takes one line; `Some(dropped before it)` when the line may be
    /// logged.
    fn take(&self) -> Option<u64> {
        if self.lines.take() {
            Some(self.dropped.swap(0, Ordering::Relaxed))
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// A guest's stdout or stderr: complete lines are logged (within the
/// plugin's budget); stderr also keeps its last bytes for fault reports.
#[derive(Clone)]
struct GuestOutput {
    plugin: Arc<str>,
    stream: &'static str,
    budget: Arc<Budget>,
    state: Arc<Mutex<Output>>,
}

#[derive(Default)]
struct Output {
    /// The line being written.
    line: Vec<u8>,
    /// The last bytes written (stderr), at most `capacity`.
    tail: VecDeque<u8>,
    capacity: usize,
}

impl GuestOutput {
    fn new(plugin: &WasiPlugin, stream: &'static str, capacity: usize) -> GuestOutput {
        GuestOutput {
            plugin: plugin.name.clone(),
            stream,
            budget: plugin.budget.clone(),
            state: Arc::new(Mutex::new(Output {
                capacity,
                ..Output::default()
            })),
        }
    }

    fn accept(&self, bytes: &[u8]) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if state.capacity > 0 {
            let capacity = state.capacity;
            state.tail.extend(bytes);
            let excess = state.tail.len().saturating_sub(capacity);
            state.tail.drain(..excess);
        }
        for &byte in bytes {
            if byte == b'\n' {
                let line = std::mem::take(&mut state.line);
                self.log(&line);
            } else {
                state.line.push(byte);
                if state.line.len() >= MAX_LINE {
                    let line = std::mem::take(&mut state.line);
                    self.log(&line);
                }
            }
        }
    }

    fn log(&self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches('\r');
        let Some(dropped) = self.budget.take() else {
            return;
        };
        if dropped > 0 {
            tracing::info!(target: "trellis::guest", plugin = %self.plugin, stream = self.stream, dropped, "{line}");
        } else {
            tracing::info!(target: "trellis::guest", plugin = %self.plugin, stream = self.stream, "{line}");
        }
    }

    /// Forgets the last bytes kept (a warm instance's next request).
    fn forget_tail(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.tail.clear();
        }
    }

    /// The last line written, for stderr.
    fn last_line(&self) -> Option<String> {
        let state = self.state.lock().ok()?;
        let bytes: Vec<u8> = state.tail.iter().copied().collect();
        let text = String::from_utf8_lossy(&bytes);
        let tail = text.trim_end().rsplit('\n').next()?.trim();
        (!tail.is_empty()).then(|| tail.to_string())
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.accept(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.accept(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl HostState {
    /// The last line the guest wrote to stderr, e.g. a panic message.
    pub(crate) fn stderr_tail(&self) -> Option<String> {
        self.instance.wasi.stderr.last_line()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_lines_is_cut_and_what_it_lost_is_counted() {
        let budget = Budget {
            lines: RateLimit::new(LINES_PER_SECOND, BURST),
            dropped: AtomicU64::new(0),
        };
        let logged = (0..BURST + 10).filter(|_| budget.take().is_some()).count();
        let burst = BURST as usize;
        assert!((burst..=burst + 1).contains(&logged), "{logged}");
        std::thread::sleep(std::time::Duration::from_millis(50));
        let dropped = budget.take().expect("a line after a pause");
        assert!((9..=10).contains(&dropped), "{dropped}");
    }
}

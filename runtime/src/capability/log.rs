//! `trellis:plugin/log`: guest log events into the host's tracing, with the
//! plugin name and request id attached and sizes bounded.

use wasmtime::component::{HasSelf, Linker};

use super::bindings::log::{self, Host, Level};
use super::{Capability, HostState, PluginSetup, Runtime};
use crate::config::Limits;

/// Longest message or field value kept; the rest is cut.
const MAX_TEXT: usize = 4096;
/// Most fields kept per event.
const MAX_FIELDS: usize = 32;

/// The `log` capability: no service, no state.
#[derive(Debug)]
pub struct Log;

impl Capability for Log {
    const NAME: &'static str = "log";
    type Plugin = ();
    type Instance = ();

    async fn start(_runtime: &Runtime<'_>) -> Result<Self, String> {
        Ok(Log)
    }

    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        log::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)
    }

    async fn configure(&self, _plugin: &PluginSetup<'_>) -> Result<(), String> {
        Ok(())
    }

    fn unconfigured(&self, _plugin: &PluginSetup<'_>) {}

    fn prepare(&self, _plugin: &(), _limits: &Limits) {}
}

impl Host for HostState {
    async fn log(&mut self, level: Level, message: String, fields: Vec<(String, String)>) {
        let message = truncate(&message);
        let fields: Vec<String> = fields
            .iter()
            .take(MAX_FIELDS)
            .map(|(k, v)| format!("{}={}", truncate(k), truncate(v)))
            .collect();
        let fields = fields.join(" ");
        let plugin = self.plugin.name.as_str();
        let request_id = self.request_id.as_str();
        macro_rules! emit {
            ($level:expr) => {
                tracing::event!(target: "trellis::guest", $level, plugin, request_id, fields, "{message}")
            };
        }
        match level {
            Level::Trace => emit!(tracing::Level::TRACE),
            Level::Debug => emit!(tracing::Level::DEBUG),
            Level::Info => emit!(tracing::Level::INFO),
            Level::Warn => emit!(tracing::Level::WARN),
            Level::Error => emit!(tracing::Level::ERROR),
        }
    }
}

fn truncate(text: &str) -> &str {
    if text.len() <= MAX_TEXT {
        return text;
    }
    let mut end = MAX_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

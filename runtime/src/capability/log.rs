//! `trellis:plugin/log`: guest log events into the host's tracing, with the
//! plugin name and request id attached and sizes bounded.

use crate::plugin::HostState;
use crate::plugin::bindings::log::{Host, Level};

/// Longest message or field value kept; the rest is cut.
const MAX_TEXT: usize = 4096;
/// Most fields kept per event.
const MAX_FIELDS: usize = 32;

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

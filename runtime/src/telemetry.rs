//! Logging setup: `tracing` with a filter from `TRELLIS_LOG` or `[log]
//! level`, written pretty or as JSON lines. Cross-cutting.

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. Call once, at the binary's start; later
/// calls (tests starting several servers) are ignored.
pub fn init(config: &LogConfig) {
    let filter = std::env::var("TRELLIS_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(&config.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}

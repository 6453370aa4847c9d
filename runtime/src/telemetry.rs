//! Logging setup: `tracing` with a filter from `TRELLIS_LOG` or `[log]
//! level`, written pretty (coloured only at a terminal) or as JSON lines.
//! Cross-cutting.

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// `TRELLIS_LOG` holds no valid log filter: a start with it would log
/// other than the operator asked, so it does not start.
#[derive(Debug, thiserror::Error)]
#[error(
    "TRELLIS_LOG={value:?} is not a valid log filter ({reason}); e.g. `info` or `info,trellis=debug`"
)]
pub struct InvalidLogFilter {
    value: String,
    reason: String,
}

/// Installs the global subscriber. Call once, at the binary's start; later
/// calls (tests starting several servers) are ignored. `TRELLIS_LOG`, when
/// set, replaces `[log] level` and must parse.
pub fn init(config: &LogConfig) -> Result<(), InvalidLogFilter> {
    let filter = match std::env::var("TRELLIS_LOG") {
        Ok(value) => EnvFilter::try_new(&value).map_err(|err| InvalidLogFilter {
            reason: err.to_string(),
            value,
        })?,
        Err(_) => EnvFilter::new(&config.level),
    };
    // Colour only for a person at a terminal: a file, a pipe or a
    // container's log collector gets plain text, and `NO_COLOR` is obeyed.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let _ = match config.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
    Ok(())
}

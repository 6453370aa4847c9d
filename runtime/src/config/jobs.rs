//! Checks of `[jobs]` values that the job queue applies too: queue names
//! and cron expressions.

use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// Queue names: 1 to 64 of a-z, 0-9, `-` and `_`.
pub fn valid_queue(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Parses a cron expression: five fields, or six with seconds first.
pub fn parse_cron(expression: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(expression)
        .map_err(|e| format!("`{expression}` is not a cron expression: {e}"))
}

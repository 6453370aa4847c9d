//! The plugin's settings, as the operator set them under
//! `[plugins.<name>.config]`. Needs the `config` capability.
//!
//! ```no_run
//! use trellis_sdk::config;
//!
//! # fn run() -> trellis_sdk::Result<()> {
//! let greeting = config::get("greeting").unwrap_or_else(|| "Hello".to_string());
//! let max_items: usize = config::get_as("max_items")?.unwrap_or(100);
//! # Ok(()) }
//! ```

use std::str::FromStr;

use crate::bindings::trellis::plugin::config as host;
use crate::{Error, Result};

/// One setting, or `None` when the operator did not set it.
pub fn get(key: &str) -> Option<String> {
    host::get(key)
}

/// One setting parsed as `T`; `None` when unset, a 500 naming the key when
/// the operator's value does not parse.
pub fn get_as<T: FromStr>(key: &str) -> Result<Option<T>> {
    get(key)
        .map(|value| {
            value.parse().map_err(|_| {
                Error::internal(format!(
                    "plugin setting `{key}` has an invalid value `{value}`"
                ))
            })
        })
        .transpose()
}

/// Every setting of this plugin.
pub fn all() -> Vec<(String, String)> {
    host::get_all()
}

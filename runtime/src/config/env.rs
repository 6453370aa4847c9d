//! The `TRELLIS_*` environment overrides: `TRELLIS_<KEY>` with `__`
//! between nesting levels, applied to the file's TOML table before it is
//! read into [`Config`]; a schema error names the variable behind it.
//!
//! Layer: config, the bottom. It uses nothing of the crate but the config
//! module's own types.

use super::{Config, ConfigError};

/// Environment variables with the `TRELLIS_` prefix that are not overrides.
const NOT_OVERRIDES: &[&str] = &["TRELLIS_CONFIG", "TRELLIS_LOG", "TRELLIS_ROLE"];

/// The config of `text` with the override variables of `env` applied, or
/// `None` when `env` holds none. `parse_error` reports a file that is not
/// TOML.
pub(super) fn overridden(
    text: &str,
    env: impl IntoIterator<Item = (String, String)>,
    parse_error: impl Fn(toml::de::Error) -> ConfigError,
) -> Result<Option<Config>, ConfigError> {
    let overrides = env_overrides(env);
    if overrides.is_empty() {
        return Ok(None);
    }
    let mut table: toml::Table = toml::from_str(text).map_err(parse_error)?;
    let keys: Vec<String> = overrides.iter().map(|(k, _)| k.join(".")).collect();
    for (key, value) in overrides {
        apply_override(&mut table, &key, value)?;
    }
    serde_path_to_error::deserialize(toml::Value::Table(table))
        .map(Some)
        .map_err(|err| ConfigError::Env {
            key: env_error_key(err.path().to_string(), &keys),
            message: err.into_inner().to_string(),
        })
}

/// `TRELLIS_A__B_C=v` → (["a", "b_c"], v), for every override variable.
fn env_overrides(
    env: impl IntoIterator<Item = (String, String)>,
) -> Vec<(Vec<String>, toml::Value)> {
    let mut overrides: Vec<_> = env
        .into_iter()
        .filter(|(k, _)| !NOT_OVERRIDES.contains(&k.as_str()))
        .filter_map(|(k, v)| {
            let rest = k.strip_prefix("TRELLIS_")?;
            let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
            Some((path, parse_env_value(&v)))
        })
        .collect();
    overrides.sort_by(|a, b| a.0.cmp(&b.0));
    overrides
}

/// The value of an override variable: a TOML value when `raw` is one
/// (number, boolean, quoted string, array, inline table), else `raw` as a
/// string.
pub(crate) fn parse_env_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

fn apply_override(
    table: &mut toml::Table,
    key: &[String],
    value: toml::Value,
) -> Result<(), ConfigError> {
    let (last, parents) = key.split_last().ok_or_else(|| ConfigError::Env {
        key: String::new(),
        message: "empty key".into(),
    })?;
    let mut current = table;
    for (i, part) in parents.iter().enumerate() {
        let entry = current
            .entry(part.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry.as_table_mut().ok_or_else(|| ConfigError::Env {
            key: key[..=i].join("."),
            message: "is not a table, so it has no keys to override".into(),
        })?;
    }
    current.insert(last.clone(), value);
    Ok(())
}

/// Names the override behind a schema error: the variable whose key the
/// error path starts with, else the path itself.
fn env_error_key(path: String, keys: &[String]) -> String {
    keys.iter()
        .find(|k| path.starts_with(k.as_str()) || k.starts_with(path.as_str()))
        .map(|k| format!("TRELLIS_{}", k.to_ascii_uppercase().replace('.', "__")))
        .map(|var| format!("{var} → {path}"))
        .unwrap_or(path)
}

//! A cache of byte values shared by every instance of the plugin on every
//! node: an in-process tier in front of Redis when the operator configures
//! it. Keys and tags belong to the plugin; another plugin's are out of reach.
//! Needs the `cache` capability.
//!
//! A cache that cannot reach Redis does not fail: it degrades to the
//! in-process tier (or a miss). The errors left are plugin bugs (a value over
//! the host's size limit, an empty or over-long key or tag), so they become
//! 500s.
//!
//! [`get_or_load`] is the usual entry point: a read-through where one caller
//! per node loads a missing value while the others wait for it.
//!
//! ```no_run
//! use std::time::Duration;
//! use trellis_sdk::cache::{self, Options};
//! use trellis_sdk::{params, sql};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Price { sku: String, cents: i64 }
//!
//! # fn price(sku: &str) -> trellis_sdk::Result<Option<Price>> {
//! let options = Options::ttl(Duration::from_secs(30)).tag("prices");
//! let price: Option<Price> = cache::get_or_load(&format!("price:{sku}"), &options, || {
//!     Ok(sql::query("SELECT sku, cents FROM prices WHERE sku = $1", &params![sku])?.first()?)
//! })?;
//! # Ok(price) }
//! ```

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::trellis::plugin::cache as host;
pub use crate::bindings::trellis::plugin::cache::Error as CacheError;
use crate::{Error, Result};

/// How long an entry lives and what it is tagged with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    ttl: Duration,
    tags: Vec<String>,
}

impl Options {
    /// Entries that live for `ttl`: whole milliseconds, at least 1 ms, and
    /// capped by the host's `cache.max_ttl`.
    pub fn ttl(ttl: Duration) -> Self {
        Options {
            ttl,
            tags: Vec::new(),
        }
    }

    /// Tags the entries with `tag`: [`invalidate_tag`] drops every entry
    /// that carries it. Repeatable.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    fn to_host(&self) -> host::EntryOptions {
        let ttl_ms = u32::try_from(self.ttl.as_millis()).unwrap_or(u32::MAX);
        host::EntryOptions {
            ttl_ms: ttl_ms.max(1),
            tags: self.tags.clone(),
        }
    }
}

/// One key's value, or `None` on a miss.
pub fn get(key: &str) -> Result<Option<Vec<u8>>> {
    Ok(host::get(key)?)
}

/// Many keys at once; the answers are in key order.
pub fn get_many(keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>> {
    let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    Ok(host::get_many(&keys)?)
}

/// Stores a value; every node stops serving the old one.
pub fn set(key: &str, value: &[u8], options: &Options) -> Result<()> {
    Ok(host::set(key, value, &options.to_host())?)
}

/// Removes a key on every node.
pub fn delete(key: &str) -> Result<()> {
    Ok(host::delete(key)?)
}

/// Drops every entry tagged `tag`, and every cached HTTP response whose
/// route declares the tag (see [`RouteCache`](crate::RouteCache)), on every
/// node.
pub fn invalidate_tag(tag: &str) -> Result<()> {
    Ok(host::invalidate_tag(tag)?)
}

/// A value stored with [`set_json`], or `None` on a miss. A value that does
/// not decode as `T` (stored by an older plugin version, say) is a miss too.
pub fn get_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>> {
    Ok(get(key)?.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
}

/// Stores `value` as JSON.
pub fn set_json<T: Serialize + ?Sized>(key: &str, value: &T, options: &Options) -> Result<()> {
    set(key, &to_json(key, value)?, options)
}

/// Read-through with stampede protection. A hit is decoded from JSON; on a
/// miss one caller per node runs `load` while the others on that node wait
/// for its result:
///
/// - `Ok(Some(v))` is cached as JSON with `options` and returned;
/// - `Ok(None)` is cached as a negative entry (later calls get `Ok(None)`
///   without loading until it expires);
/// - `Err(e)` is reported to the waiting callers and returned; they get the
///   previous value if it expired only shortly before, else one of them
///   loads.
///
/// A cached value that does not decode as `T` is loaded again and replaced.
pub fn get_or_load<T, F>(key: &str, options: &Options, load: F) -> Result<Option<T>>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Result<Option<T>>,
{
    match fetch(key)? {
        Lookup::Hit(bytes) => match serde_json::from_slice(&bytes) {
            Ok(value) => Ok(Some(value)),
            Err(_) => reload(key, options, load),
        },
        Lookup::Absent => Ok(None),
        Lookup::Load(loader) => match load() {
            Ok(Some(value)) => {
                loader.fill(Some(&to_json(key, &value)?), options)?;
                Ok(Some(value))
            }
            Ok(None) => {
                loader.fill(None, options)?;
                Ok(None)
            }
            Err(err) => {
                loader.fail(&err.to_string());
                Err(err)
            }
        },
    }
}

/// Replaces a cached value that no longer decodes (no stampede protection:
/// the hit path has no loader).
fn reload<T, F>(key: &str, options: &Options, load: F) -> Result<Option<T>>
where
    T: Serialize,
    F: FnOnce() -> Result<Option<T>>,
{
    let value = load()?;
    match &value {
        Some(value) => set_json(key, value, options)?,
        None => delete(key)?,
    }
    Ok(value)
}

fn to_json<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|err| {
        Error::internal(format!(
            "cache: cannot serialize the value of `{key}`: {err}"
        ))
    })
}

/// What [`fetch`] found.
#[derive(Debug)]
pub enum Lookup {
    /// A fresh value.
    Hit(Vec<u8>),
    /// A negative entry: a loader found nothing.
    Absent,
    /// Nothing usable: load the value and [`Loader::fill`] it (or
    /// [`Loader::fail`]). Also handed to one caller shortly before an entry
    /// expires (early refresh), while the others still get hits.
    Load(Loader),
}

/// The duty to load a missing value. Other callers of [`fetch`] on the same
/// key on this node wait until it is filled or failed; dropping it without
/// either counts as [`Loader::fail`].
#[derive(Debug)]
pub struct Loader {
    raw: host::Loader,
}

impl Loader {
    /// Stores the loaded value (`None`: remember that there is none, a
    /// negative entry) and hands it to the waiting callers.
    pub fn fill(self, value: Option<&[u8]>, options: &Options) -> Result<()> {
        Ok(self.raw.fill(value, &options.to_host())?)
    }

    /// The load failed: the waiting callers get the previous value if it
    /// expired less than the host's `cache.stale_for` ago, else one of them
    /// loads.
    pub fn fail(self, message: &str) {
        self.raw.fail(message);
    }
}

/// The byte-level read-through behind [`get_or_load`]: a hit, a negative
/// entry, or a [`Loader`] for the caller to run.
pub fn fetch(key: &str) -> Result<Lookup> {
    Ok(match host::fetch(key)? {
        host::Lookup::Hit(bytes) => Lookup::Hit(bytes),
        host::Lookup::Absent => Lookup::Absent,
        host::Lookup::Load(raw) => Lookup::Load(Loader { raw }),
    })
}

/// `?` on a cache error: both kinds are plugin bugs, so a 500 with code
/// `cache_value_too_large` or `cache_invalid`.
impl From<CacheError> for Error {
    fn from(err: CacheError) -> Self {
        match err {
            CacheError::TooLarge(limit) => Error::internal(format!(
                "cache: the value is larger than the host's limit of {limit} bytes \
                 (cache.max_value, or the plugin's limits.max_cache_value)"
            ))
            .with_code("cache_value_too_large"),
            CacheError::Invalid(message) => {
                Error::internal(format!("cache: invalid call: {message}"))
                    .with_code("cache_invalid")
            }
        }
    }
}

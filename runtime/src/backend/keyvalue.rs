//! The store behind `wasi:keyvalue`: buckets of key-value pairs, each
//! plugin's under its own name so it cannot reach another's.
//!
//! - **With Redis** (`[redis]`): one hash per bucket,
//!   `<namespace>:kv:<plugin>:<bucket>`, shared by every node and kept as
//!   long as Redis keeps it. `increment` is `HINCRBY`, `list-keys` pages
//!   with `HSCAN`'s own cursor. While Redis is away, calls fail with
//!   "unavailable" at once: a write never lands in one node's memory
//!   where the other nodes would not see it.
//! - **Embedded** (no Redis): in process, lost when the node stops, and
//!   bounded by `cache.keyvalue_size` over all plugins; a write beyond it
//!   fails with "full". Nothing is evicted: this is a store, not a cache.
//!
//! Layer: backend. It may call the Redis clients (`backend::redis`) and the
//! cache's config.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use fred::interfaces::{HashesInterface, LuaInterface};
use fred::types::Value;

use super::cache::MAX_KEY;
use super::redis::Redis;
use crate::config::CacheConfig;

/// Keys in one `list-keys` page.
pub const PAGE: usize = 1000;
/// Most keys in one batch call.
pub const MAX_MANY: usize = super::cache::MAX_MANY;

/// What an entry costs the embedded store beyond its key and value.
const ENTRY_OVERHEAD: u64 = 64;

/// One page of `HSCAN`, keys only.
const SCAN_KEYS: &str = r"
local page = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
local keys = {}
for i = 1, #page[2], 2 do keys[#keys + 1] = page[2][i] end
return {page[1], keys}
";

/// Why a key-value call failed (the guest gets its text as `other`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// Redis is configured and does not answer.
    #[error("the key-value store is unavailable: {0}")]
    Unavailable(String),
    /// The embedded store is at `cache.keyvalue_size`.
    #[error("the key-value store is full (cache.keyvalue_size, {0} bytes)")]
    Full(u64),
    /// A bad key, count or delta, or a value that is not a number.
    #[error("{0}")]
    Invalid(String),
}

/// The store every plugin's buckets live in. Cheap to clone.
#[derive(Debug, Clone)]
pub struct KeyValueService {
    store: Store,
    /// `cache.max_value`: the largest value.
    max_value: u64,
}

#[derive(Debug, Clone)]
enum Store {
    Memory(Arc<Memory>),
    Redis(Redis),
}

/// The embedded store: buckets by `<plugin>\x1f<bucket>`, and their
/// total size.
#[derive(Debug)]
struct Memory {
    state: Mutex<MemoryState>,
    limit: u64,
}

#[derive(Debug, Default)]
struct MemoryState {
    buckets: HashMap<String, BTreeMap<String, Bytes>>,
    used: u64,
}

/// One plugin's bucket, as the service addresses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketId(String);

fn cost(key: &str, value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64 + ENTRY_OVERHEAD
}

/// Checks a key.
pub fn check_key(key: &str) -> Result<(), KvError> {
    if key.len() > MAX_KEY {
        return Err(KvError::Invalid(format!(
            "a key is at most {MAX_KEY} bytes"
        )));
    }
    Ok(())
}

fn check_many(count: usize) -> Result<(), KvError> {
    if count > MAX_MANY {
        return Err(KvError::Invalid(format!(
            "one batch call takes at most {MAX_MANY} keys"
        )));
    }
    Ok(())
}

fn parse_number(value: &[u8]) -> Result<u64, KvError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.parse::<u64>().ok())
        .ok_or_else(|| KvError::Invalid("the value is not a decimal number".into()))
}

impl KeyValueService {
    /// The store: on `redis` when given, else in process within
    /// `config.keyvalue_size`.
    pub fn new(config: &CacheConfig, redis: Option<Redis>) -> Self {
        let store = match redis {
            Some(redis) => Store::Redis(redis),
            None => Store::Memory(Arc::new(Memory {
                state: Mutex::default(),
                limit: config.keyvalue_size.as_u64(),
            })),
        };
        KeyValueService {
            store,
            max_value: config.max_value.as_u64(),
        }
    }

    /// The largest value a plugin may store (`cache.max_value`).
    pub fn max_value(&self) -> u64 {
        self.max_value
    }

    /// Plugin `plugin`'s bucket `name`.
    pub fn bucket(&self, plugin: &str, name: &str) -> BucketId {
        match &self.store {
            Store::Memory(_) => BucketId(format!("{plugin}\u{1f}{name}")),
            Store::Redis(redis) => BucketId(format!("{}kv:{plugin}:{name}", redis.prefix)),
        }
    }

    /// The value of `key`.
    pub async fn get(&self, bucket: &BucketId, key: &str) -> Result<Option<Bytes>, KvError> {
        check_key(key)?;
        match &self.store {
            Store::Memory(memory) => Ok(memory
                .lock()
                .buckets
                .get(&bucket.0)
                .and_then(|b| b.get(key).cloned())),
            Store::Redis(redis) => client(redis)?
                .hget(&bucket.0, key)
                .await
                .map_err(unavailable),
        }
    }

    /// Whether `key` is set.
    pub async fn exists(&self, bucket: &BucketId, key: &str) -> Result<bool, KvError> {
        check_key(key)?;
        match &self.store {
            Store::Memory(memory) => Ok(memory
                .lock()
                .buckets
                .get(&bucket.0)
                .is_some_and(|b| b.contains_key(key))),
            Store::Redis(redis) => client(redis)?
                .hexists(&bucket.0, key)
                .await
                .map_err(unavailable),
        }
    }

    /// Sets `key`.
    pub async fn set(&self, bucket: &BucketId, key: &str, value: Bytes) -> Result<(), KvError> {
        self.set_many(bucket, vec![(key.to_string(), value)]).await
    }

    /// Sets every pair, all or none.
    pub async fn set_many(
        &self,
        bucket: &BucketId,
        pairs: Vec<(String, Bytes)>,
    ) -> Result<(), KvError> {
        check_many(pairs.len())?;
        for (key, _) in &pairs {
            check_key(key)?;
        }
        if pairs.is_empty() {
            return Ok(());
        }
        match &self.store {
            Store::Memory(memory) => memory.set_many(&bucket.0, pairs),
            Store::Redis(redis) => client(redis)?
                .hset::<(), _, _>(&bucket.0, pairs)
                .await
                .map_err(unavailable),
        }
    }

    /// Removes `key`.
    pub async fn delete(&self, bucket: &BucketId, key: &str) -> Result<(), KvError> {
        self.delete_many(bucket, vec![key.to_string()]).await
    }

    /// Removes every key.
    pub async fn delete_many(&self, bucket: &BucketId, keys: Vec<String>) -> Result<(), KvError> {
        check_many(keys.len())?;
        for key in &keys {
            check_key(key)?;
        }
        if keys.is_empty() {
            return Ok(());
        }
        match &self.store {
            Store::Memory(memory) => {
                let mut state = memory.lock();
                let MemoryState { buckets, used } = &mut *state;
                if let Some(entries) = buckets.get_mut(&bucket.0) {
                    for key in &keys {
                        if let Some(old) = entries.remove(key) {
                            *used -= cost(key, &old);
                        }
                    }
                    if entries.is_empty() {
                        buckets.remove(&bucket.0);
                    }
                }
                Ok(())
            }
            Store::Redis(redis) => client(redis)?
                .hdel::<(), _, _>(&bucket.0, keys)
                .await
                .map_err(unavailable),
        }
    }

    /// The values of `keys`, in order.
    pub async fn get_many(
        &self,
        bucket: &BucketId,
        keys: &[String],
    ) -> Result<Vec<Option<Bytes>>, KvError> {
        check_many(keys.len())?;
        for key in keys {
            check_key(key)?;
        }
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        match &self.store {
            Store::Memory(memory) => {
                let state = memory.lock();
                let entries = state.buckets.get(&bucket.0);
                Ok(keys
                    .iter()
                    .map(|key| entries.and_then(|b| b.get(key).cloned()))
                    .collect())
            }
            Store::Redis(redis) => {
                let values: Vec<Option<Bytes>> = client(redis)?
                    .hmget(&bucket.0, keys.to_vec())
                    .await
                    .map_err(unavailable)?;
                Ok(values)
            }
        }
    }

    /// Adds `delta` to the decimal number at `key` (0 when not set).
    pub async fn increment(
        &self,
        bucket: &BucketId,
        key: &str,
        delta: u64,
    ) -> Result<u64, KvError> {
        check_key(key)?;
        match &self.store {
            Store::Memory(memory) => memory.increment(&bucket.0, key, delta),
            Store::Redis(redis) => {
                let delta = i64::try_from(delta).map_err(|_| {
                    KvError::Invalid(format!("with Redis, an increment is at most {}", i64::MAX))
                })?;
                let value: i64 = client(redis)?
                    .hincrby(&bucket.0, key, delta)
                    .await
                    .map_err(|e| match e.kind() {
                        fred::error::ErrorKind::IO
                        | fred::error::ErrorKind::Timeout
                        | fred::error::ErrorKind::Canceled => unavailable(e),
                        // "hash value is not an integer", "would overflow"
                        _ => KvError::Invalid(e.details().to_string()),
                    })?;
                u64::try_from(value).map_err(|_| KvError::Invalid("the value is negative".into()))
            }
        }
    }

    /// A page of the bucket's keys from `cursor`, and where the next page
    /// starts (`None` after the last).
    pub async fn list(
        &self,
        bucket: &BucketId,
        cursor: Option<u64>,
    ) -> Result<(Vec<String>, Option<u64>), KvError> {
        match &self.store {
            Store::Memory(memory) => {
                let state = memory.lock();
                let Some(entries) = state.buckets.get(&bucket.0) else {
                    return Ok((Vec::new(), None));
                };
                // The cursor is an offset into the keys in order: a page
                // may repeat or skip keys set or removed meanwhile, as a
                // scan may.
                let start = usize::try_from(cursor.unwrap_or(0)).unwrap_or(usize::MAX);
                let keys: Vec<String> = entries.keys().skip(start).take(PAGE).cloned().collect();
                let end = start.saturating_add(keys.len());
                let next = (end < entries.len()).then_some(end as u64);
                Ok((keys, next))
            }
            Store::Redis(redis) => {
                let cursor = cursor.unwrap_or(0).to_string();
                let page: Value = client(redis)?
                    .eval(
                        SCAN_KEYS,
                        vec![bucket.0.clone()],
                        vec![cursor, PAGE.to_string()],
                    )
                    .await
                    .map_err(unavailable)?;
                scan_page(page)
            }
        }
    }
}

/// `{cursor, {key, …}}` from [`SCAN_KEYS`]; cursor `0` ends the scan.
fn scan_page(page: Value) -> Result<(Vec<String>, Option<u64>), KvError> {
    let odd = || KvError::Unavailable("an HSCAN answer of an unexpected shape".into());
    let mut parts = page.into_array().into_iter();
    let (Some(cursor), Some(keys)) = (parts.next(), parts.next()) else {
        return Err(odd());
    };
    let cursor = cursor
        .as_str()
        .and_then(|c| c.parse::<u64>().ok())
        .ok_or_else(odd)?;
    let keys = keys
        .into_array()
        .into_iter()
        .map(|k| k.into_string().ok_or_else(odd))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((keys, (cursor != 0).then_some(cursor)))
}

impl Memory {
    fn lock(&self) -> MutexGuard<'_, MemoryState> {
        // A panic while holding it left a consistent map (every update
        // checks before it writes).
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set_many(&self, bucket: &str, pairs: Vec<(String, Bytes)>) -> Result<(), KvError> {
        let mut state = self.lock();
        let MemoryState { buckets, used } = &mut *state;
        let entries = buckets.entry(bucket.to_string()).or_default();
        // What the bucket holds after the writes, before any is made.
        let mut after = *used;
        let mut seen = std::collections::HashSet::new();
        for (key, value) in pairs.iter().rev() {
            if !seen.insert(key.as_str()) {
                continue;
            }
            if let Some(old) = entries.get(key) {
                after -= cost(key, old);
            }
            after += cost(key, value);
        }
        if after > self.limit && after > *used {
            if entries.is_empty() {
                buckets.remove(bucket);
            }
            return Err(KvError::Full(self.limit));
        }
        for (key, value) in pairs {
            entries.insert(key, value);
        }
        *used = after;
        Ok(())
    }

    fn increment(&self, bucket: &str, key: &str, delta: u64) -> Result<u64, KvError> {
        let mut state = self.lock();
        let MemoryState { buckets, used } = &mut *state;
        let old = buckets.get(bucket).and_then(|b| b.get(key));
        let current = old.map_or(Ok(0), |v| parse_number(v))?;
        let new = current
            .checked_add(delta)
            .ok_or_else(|| KvError::Invalid("the increment would overflow".into()))?;
        let value = Bytes::from(new.to_string());
        let after = *used - old.map_or(0, |v| cost(key, v)) + cost(key, &value);
        if after > self.limit && after > *used {
            return Err(KvError::Full(self.limit));
        }
        buckets
            .entry(bucket.to_string())
            .or_default()
            .insert(key.to_string(), value);
        *used = after;
        Ok(new)
    }
}

fn client(redis: &Redis) -> Result<&fred::clients::Client, KvError> {
    redis
        .connected()
        .ok_or_else(|| KvError::Unavailable("Redis is not connected".into()))
}

fn unavailable(err: fred::error::Error) -> KvError {
    KvError::Unavailable(err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory(limit: u64) -> KeyValueService {
        let config = CacheConfig {
            keyvalue_size: bytesize::ByteSize::b(limit),
            ..CacheConfig::default()
        };
        KeyValueService::new(&config, None)
    }

    #[tokio::test]
    async fn buckets_of_two_plugins_are_apart() {
        let kv = memory(1 << 20);
        let (a, b) = (kv.bucket("a", "default"), kv.bucket("b", "default"));
        kv.set(&a, "k", Bytes::from_static(b"1"))
            .await
            .expect("in process");
        assert_eq!(
            kv.get(&a, "k").await.expect("in process").as_deref(),
            Some(&b"1"[..])
        );
        assert_eq!(kv.get(&b, "k").await.expect("in process"), None);
        assert!(!kv.exists(&b, "k").await.expect("in process"));
    }

    #[tokio::test]
    async fn the_embedded_store_is_bounded_and_frees_what_is_removed() {
        let kv = memory(2 * ENTRY_OVERHEAD + 20);
        let bucket = kv.bucket("p", "default");
        kv.set(&bucket, "a", Bytes::from(vec![0; 9]))
            .await
            .expect("in process");
        kv.set(&bucket, "b", Bytes::from(vec![0; 9]))
            .await
            .expect("in process");
        let full = kv.set(&bucket, "c", Bytes::from_static(b"x")).await;
        assert!(matches!(full, Err(KvError::Full(_))), "{full:?}");
        // Replacing a value with a smaller one is always allowed.
        kv.set(&bucket, "a", Bytes::new())
            .await
            .expect("in process");
        kv.delete(&bucket, "b").await.expect("in process");
        kv.set(&bucket, "c", Bytes::from_static(b"x"))
            .await
            .expect("in process");
        let batch = vec![("d".to_string(), Bytes::from(vec![0; 100]))];
        assert!(kv.set_many(&bucket, batch).await.is_err());
        assert_eq!(
            kv.get(&bucket, "d").await.expect("in process"),
            None,
            "all or none"
        );
    }

    #[tokio::test]
    async fn increment_counts_from_zero_and_refuses_what_is_not_a_number() {
        let kv = memory(1 << 20);
        let bucket = kv.bucket("p", "default");
        assert_eq!(kv.increment(&bucket, "n", 5).await.expect("in process"), 5);
        assert_eq!(kv.increment(&bucket, "n", 2).await.expect("in process"), 7);
        assert_eq!(
            kv.get(&bucket, "n").await.expect("in process").as_deref(),
            Some(&b"7"[..])
        );
        kv.set(&bucket, "t", Bytes::from_static(b"seven"))
            .await
            .expect("in process");
        assert!(kv.increment(&bucket, "t", 1).await.is_err());
        kv.set(&bucket, "m", Bytes::from(u64::MAX.to_string()))
            .await
            .expect("in process");
        assert!(kv.increment(&bucket, "m", 1).await.is_err());
    }

    #[tokio::test]
    async fn list_pages_through_every_key_once() {
        let kv = memory(1 << 24);
        let bucket = kv.bucket("p", "default");
        for range in [0..PAGE, PAGE..PAGE + 5] {
            let pairs = range.map(|i| (format!("k{i:05}"), Bytes::new())).collect();
            kv.set_many(&bucket, pairs).await.expect("in process");
        }
        let (first, next) = kv.list(&bucket, None).await.expect("in process");
        assert_eq!((first.len(), next), (PAGE, Some(PAGE as u64)));
        let (rest, end) = kv.list(&bucket, next).await.expect("in process");
        assert_eq!((rest.len(), end), (5, None));
        assert_eq!(
            kv.list(&bucket, Some(u64::MAX)).await.expect("in process"),
            (Vec::new(), None)
        );
    }
}

//! The two-tier cache behind the `cache` capability and the HTTP response
//! cache.
//!
//! - **L1**: in process (moka), bounded in bytes, a ttl per entry. With
//!   Redis configured an entry stays in L1 at most `cache.l1_max_ttl`.
//! - **L2**: Redis (fred), when configured. Every write and delete is
//!   published on `<namespace>:invalidate`; every node drops the key from
//!   its L1 when the message arrives (milliseconds). A node flushes its
//!   whole L1 when its subscription drops and again when it is back, since
//!   it may have missed messages; `l1_max_ttl` bounds what a lost message
//!   can cost.
//! - **Tags** are invalidated lazily through epochs: an entry records the
//!   epoch of each of its tags when stored, and is not served once a tag's
//!   epoch moved on. Epochs live in Redis (`INCR`) and are cached per node,
//!   refreshed by the same invalidation messages.
//! - **Loads**: [`CacheService::fetch`] is read-through with single-flight
//!   (concurrent misses on one key in one node load once), probabilistic
//!   early refresh (XFetch: `now + delta·β·(−ln rand) ≥ expiry`), negative
//!   entries, and stale-on-error (a failed load lets waiters have the old
//!   value up to `cache.stale_for` past its expiry).
//! - **Redis down**: reads and writes use L1 alone (with a warning and
//!   `trellis_cache_redis_errors_total`); nothing fails; fred reconnects.
//!
//! Keys are namespaced per plugin here, so a plugin cannot name another's.

mod entry;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fred::interfaces::{EventInterface, KeysInterface, LuaInterface, PubsubInterface};
use fred::types::Expiration;
use tokio::sync::watch;

pub use entry::Entry;

use super::redis::Redis;
use crate::clock::now_ms;
use crate::config::CacheConfig;
use crate::monitor::CacheStats;

/// Longest key or tag a plugin may use, in bytes.
pub const MAX_KEY: usize = 512;
/// Most keys in one `get-many`.
pub const MAX_MANY: usize = 1000;
/// Most tags on one entry.
pub const MAX_TAGS: usize = 32;
/// XFetch's β: above 1 refreshes earlier.
const BETA: f64 = 1.0;
/// Tags remembered per node (their epochs).
const TAG_CAPACITY: u64 = 100_000;

/// A tag's new epoch comes from one counter for the whole namespace, so a
/// tag key that expired (after every entry it could outdate did) and is
/// set again still gets an epoch above any entry stored before.
const BUMP_TAG: &str = r"
local epoch = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], epoch, 'PX', ARGV[1])
return epoch
";

/// Why a cache call was refused. Redis trouble is never one of these: the
/// cache degrades instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    /// The value is larger than `cache.max_value` or the plugin's
    /// `limits.max_cache_value` (the limit, in bytes).
    #[error(
        "the value is larger than the limit of {0} bytes (cache.max_value, limits.max_cache_value)"
    )]
    TooLarge(u64),
    /// A bad key, tag, ttl or count.
    #[error("{0}")]
    Invalid(String),
}

/// What [`CacheService::fetch`] found.
#[derive(Debug)]
pub enum Fetched {
    /// A value (fresh, or stale after a failed load).
    Hit(Bytes),
    /// A negative entry.
    Absent,
    /// The caller loads and fills (or fails) the ticket.
    Load(LoadTicket),
}

/// The cache every plugin (and the response cache) uses. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CacheService {
    inner: Arc<Inner>,
}

struct Inner {
    l1: moka::sync::Cache<String, Arc<Stored>>,
    /// Epoch per `plugin/tag`.
    tags: moka::sync::Cache<String, u64>,
    /// Embedded mode: epochs come from this counter; a tag evicted from
    /// `tags` reads as `floor`, which is above any epoch it ever had.
    next_epoch: AtomicU64,
    floor: Arc<AtomicU64>,
    flights: Mutex<HashMap<String, Arc<Flight>>>,
    redis: Option<Redis>,
    config: CacheConfig,
    /// This node, to skip its own invalidation messages.
    node: String,
    stats: CacheStats,
    /// When Redis trouble was last logged (to log it once per 10 s).
    warned_at: Mutex<Option<Instant>>,
    subscribed: AtomicBool,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheService")
            .field("redis", &self.redis)
            .field("l1_entries", &self.l1.entry_count())
            .finish_non_exhaustive()
    }
}

/// An L1 entry and how long L1 may keep it.
#[derive(Debug)]
struct Stored {
    entry: Entry,
    keep: Duration,
}

/// A load in progress on one node.
#[derive(Debug)]
struct Flight {
    done: watch::Sender<Option<Outcome>>,
}

#[derive(Debug, Clone)]
enum Outcome {
    Filled(Arc<Entry>),
    Failed,
    /// The answer is not one to cache (say a 404): each waiter loads its
    /// own, at once, instead of one after another.
    Uncacheable,
}

/// The right (and duty) to load one key: fill it or fail it. Dropped
/// without either, it fails, so waiters never hang on a trapped guest.
#[derive(Debug)]
pub struct LoadTicket {
    cache: CacheService,
    plugin: String,
    key: String,
    flight: Option<Arc<Flight>>,
    started: Instant,
    finished: bool,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Invalidation {
    /// The node that published it.
    n: String,
    p: String,
    /// A key, or
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k: Option<String>,
    /// a tag and its new epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    t: Option<(String, u64)>,
}

impl CacheService {
    /// A cache with `config`'s bounds, on `redis` when given. Starts the
    /// invalidation listener.
    pub async fn start(config: &CacheConfig, redis: Option<Redis>, stats: CacheStats) -> Self {
        let evictions = stats.clone();
        let l1 = moka::sync::Cache::builder()
            .max_capacity(config.l1_size.as_u64())
            .weigher(|key: &String, stored: &Arc<Stored>| {
                u32::try_from(key.len() + stored.entry.weight()).unwrap_or(u32::MAX)
            })
            .expire_after(KeepFor)
            .eviction_listener(move |_key, _value, cause| match cause {
                moka::notification::RemovalCause::Size => evictions.evicted("size"),
                moka::notification::RemovalCause::Expired => evictions.evicted("expired"),
                _ => {}
            })
            .build();
        let floor = Arc::new(AtomicU64::new(0));
        let tags = {
            let builder = moka::sync::Cache::builder().max_capacity(TAG_CAPACITY);
            if redis.is_some() {
                builder.time_to_live(config.l1_max_ttl).build()
            } else {
                let floor = floor.clone();
                builder
                    .eviction_listener(move |_key, epoch: u64, cause| {
                        // Only a tag pushed out for room is forgotten.
                        if cause == moka::notification::RemovalCause::Size {
                            floor.fetch_max(epoch.saturating_add(1), Ordering::Relaxed);
                        }
                    })
                    .build()
            }
        };
        let cache = CacheService {
            inner: Arc::new(Inner {
                l1,
                tags,
                next_epoch: AtomicU64::new(1),
                floor,
                flights: Mutex::default(),
                redis,
                config: config.clone(),
                node: uuid::Uuid::new_v4().simple().to_string(),
                stats,
                warned_at: Mutex::default(),
                subscribed: AtomicBool::new(false),
            }),
        };
        cache.listen().await;
        cache
    }

    /// Whether a Redis tier is configured, and whether it is up.
    pub fn redis_state(&self) -> Option<bool> {
        self.inner.redis.as_ref().map(Redis::is_up)
    }

    /// The Redis clients, when configured (locks share them).
    pub fn redis(&self) -> Option<&Redis> {
        self.inner.redis.as_ref()
    }

    /// The configured bounds.
    pub fn config(&self) -> &CacheConfig {
        &self.inner.config
    }

    /// Checks a key or tag.
    pub fn check_name(what: &str, name: &str) -> Result<(), CacheError> {
        if name.is_empty() || name.len() > MAX_KEY {
            return Err(CacheError::Invalid(format!(
                "a cache {what} is 1 to {MAX_KEY} bytes"
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(CacheError::Invalid(format!(
                "a cache {what} has no control characters"
            )));
        }
        Ok(())
    }

    /// A fresh value of `plugin`'s `key`: `Some(None)` for a negative entry.
    pub async fn get(&self, plugin: &str, key: &str) -> Result<Option<Option<Bytes>>, CacheError> {
        Self::check_name("key", key)?;
        Ok(self.get_internal(plugin, key).await)
    }

    /// As [`CacheService::get`] for a key the runtime made.
    pub(crate) async fn get_internal(&self, plugin: &str, key: &str) -> Option<Option<Bytes>> {
        let now = now_ms();
        self.read(plugin, key)
            .await
            .filter(|e| e.fresh(now))
            .map(|e| e.value.clone())
    }

    /// The current epochs of `tags`, to store an entry later with the
    /// epochs from before its value was computed (a tag invalidated in
    /// between then outdates it at once). Unknown epochs read as 0.
    pub(crate) async fn tag_epochs(&self, plugin: &str, tags: &[String]) -> Vec<(String, u64)> {
        let mut epochs = Vec::with_capacity(tags.len());
        for tag in tags {
            let epoch = self.tag_epoch(plugin, tag).await.unwrap_or(0);
            epochs.push((tag.clone(), epoch));
        }
        epochs
    }

    /// Stores a runtime-made entry with tag epochs taken before its value
    /// was computed ([`CacheService::tag_epochs`]).
    pub(crate) async fn set_tagged(
        &self,
        plugin: &str,
        key: &str,
        value: Bytes,
        ttl: Duration,
        tagged: Vec<(String, u64)>,
    ) -> Result<Arc<Entry>, CacheError> {
        self.store_entry(plugin, key, Some(value), ttl, tagged, Duration::ZERO)
            .await
    }

    /// Many keys; L2 is asked once for all L1 misses.
    pub async fn get_many(
        &self,
        plugin: &str,
        keys: &[String],
    ) -> Result<Vec<Option<Bytes>>, CacheError> {
        if keys.len() > MAX_MANY {
            return Err(CacheError::Invalid(format!(
                "at most {MAX_MANY} keys at once"
            )));
        }
        for key in keys {
            Self::check_name("key", key)?;
        }
        let now = now_ms();
        let mut found: Vec<Option<Arc<Entry>>> = Vec::with_capacity(keys.len());
        let mut missing = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let entry = self.read_l1(plugin, key).await;
            if entry.is_none() {
                missing.push(i);
            }
            found.push(entry);
        }
        if !missing.is_empty()
            && let Some(redis) = self.up()
        {
            let names: Vec<String> = missing
                .iter()
                .map(|&i| self.redis_key(redis, plugin, &keys[i]))
                .collect();
            match redis.client.mget::<Vec<Option<Bytes>>, _>(names).await {
                Ok(values) => {
                    for (&i, raw) in missing.iter().zip(values) {
                        found[i] = self.admit(plugin, &keys[i], raw).await;
                    }
                }
                Err(err) => self.redis_failed("mget", &err),
            }
        }
        Ok(found
            .into_iter()
            .map(|e| e.filter(|e| e.fresh(now)).and_then(|e| e.value.clone()))
            .collect())
    }

    /// Stores `value` (`None`: a negative entry) for `ttl` with `tags`, and
    /// invalidates the key on every other node.
    pub async fn set(
        &self,
        plugin: &str,
        key: &str,
        value: Option<Bytes>,
        ttl: Duration,
        tags: &[String],
    ) -> Result<Arc<Entry>, CacheError> {
        Self::check_name("key", key)?;
        self.store(plugin, key, value, ttl, tags, Duration::ZERO)
            .await
    }

    /// As [`CacheService::set`] for a key the runtime made (the response
    /// cache's keys hold a control character, so no plugin key can equal
    /// one).
    pub(crate) async fn set_internal(
        &self,
        plugin: &str,
        key: &str,
        value: Bytes,
        ttl: Duration,
        tags: &[String],
    ) -> Result<Arc<Entry>, CacheError> {
        self.store(plugin, key, Some(value), ttl, tags, Duration::ZERO)
            .await
    }

    /// Removes `key` on every node.
    pub async fn delete(&self, plugin: &str, key: &str) -> Result<(), CacheError> {
        Self::check_name("key", key)?;
        self.inner.l1.invalidate(&l1_key(plugin, key));
        self.inner.stats.invalidation("key", "local");
        if let Some(redis) = self.up() {
            if let Err(err) = redis
                .client
                .del::<(), _>(self.redis_key(redis, plugin, key))
                .await
            {
                self.redis_failed("del", &err);
            }
            self.publish(redis, plugin, Some(key.to_string()), None)
                .await;
        }
        Ok(())
    }

    /// Makes every entry tagged `tag` unservable, on every node.
    pub async fn invalidate_tag(&self, plugin: &str, tag: &str) -> Result<(), CacheError> {
        Self::check_name("tag", tag)?;
        self.invalidate_tag_internal(plugin, tag).await;
        Ok(())
    }

    /// As [`CacheService::invalidate_tag`] for a tag the runtime made (the
    /// query cache's table tags).
    pub(crate) async fn invalidate_tag_internal(&self, plugin: &str, tag: &str) {
        let name = l1_key(plugin, tag);
        self.inner.stats.invalidation("tag", "local");
        if let Some(redis) = self.up() {
            let keep = self.inner.config.max_ttl + self.inner.config.stale_for;
            let bumped = redis
                .client
                .eval::<u64, _, _, _>(
                    BUMP_TAG,
                    vec![
                        format!("{}epoch", redis.prefix),
                        self.redis_tag(redis, plugin, tag),
                    ],
                    vec![millis(keep).to_string()],
                )
                .await;
            match bumped {
                Ok(epoch) => {
                    self.inner.tags.insert(name, epoch);
                    self.publish(redis, plugin, None, Some((tag.to_string(), epoch)))
                        .await;
                    return;
                }
                Err(err) => self.redis_failed("invalidate_tag", &err),
            }
            // Redis failed: at least this node stops serving the tag.
            self.inner.tags.insert(name, u64::MAX);
            return;
        }
        let epoch = self.inner.next_epoch.fetch_add(1, Ordering::Relaxed);
        let floor = self.inner.floor.load(Ordering::Relaxed);
        self.inner.tags.insert(name, epoch.max(floor));
    }

    /// Read-through with stampede protection (see the module docs).
    pub async fn fetch(&self, plugin: &str, key: &str) -> Result<Fetched, CacheError> {
        Self::check_name("key", key)?;
        Ok(self.fetch_internal(plugin, key).await)
    }

    /// As [`CacheService::fetch`] for a key the runtime made.
    pub(crate) async fn fetch_internal(&self, plugin: &str, key: &str) -> Fetched {
        let name = l1_key(plugin, key);
        for _ in 0..3 {
            let found = self.read(plugin, key).await;
            let now = now_ms();
            if let Some(entry) = &found
                && entry.fresh(now)
            {
                if early_refresh(entry, now)
                    && let Some(flight) = self.begin(&name)
                {
                    return Fetched::Load(self.ticket(plugin, key, Some(flight)));
                }
                return hit(entry);
            }
            let flight = match self.join(&name) {
                Joined::Leader(flight) => {
                    return Fetched::Load(self.ticket(plugin, key, Some(flight)));
                }
                Joined::Follower(flight) => flight,
            };
            let mut done = flight.done.subscribe();
            let outcome =
                tokio::time::timeout(self.inner.config.load_wait, done.wait_for(Option::is_some))
                    .await;
            match outcome {
                Ok(Ok(state)) => match state.clone() {
                    Some(Outcome::Filled(entry)) => return hit(&entry),
                    Some(Outcome::Uncacheable) => {
                        return Fetched::Load(self.ticket(plugin, key, None));
                    }
                    _ => {
                        // The load failed: the old value, if recent enough.
                        if let Some(entry) = found.filter(|e| self.servable_stale(e, now)) {
                            self.inner.stats.stale_served();
                            return hit(&entry);
                        }
                    }
                },
                // The leader's sender is gone: try again.
                Ok(Err(_)) => {}
                Err(_) => {
                    // Waited long enough: load without single-flight.
                    return Fetched::Load(self.ticket(plugin, key, None));
                }
            }
        }
        Fetched::Load(self.ticket(plugin, key, None))
    }

    /// Drops everything in process (used when invalidations may have been
    /// missed).
    pub fn flush_l1(&self) {
        self.inner.l1.invalidate_all();
        self.inner.tags.invalidate_all();
    }

    /// Entries in process now, and their weight.
    pub fn l1_usage(&self) -> (u64, u64) {
        self.inner.l1.run_pending_tasks();
        (self.inner.l1.entry_count(), self.inner.l1.weighted_size())
    }
}

/// Reads and writes of the two tiers.
impl CacheService {
    async fn store(
        &self,
        plugin: &str,
        key: &str,
        value: Option<Bytes>,
        ttl: Duration,
        tags: &[String],
        delta: Duration,
    ) -> Result<Arc<Entry>, CacheError> {
        if tags.len() > MAX_TAGS {
            return Err(CacheError::Invalid(format!(
                "at most {MAX_TAGS} tags per entry"
            )));
        }
        for tag in tags {
            Self::check_name("tag", tag)?;
        }
        // Unknown epochs (Redis away) read as 0, which any invalidation
        // outdates.
        let tagged = self.tag_epochs(plugin, tags).await;
        self.store_entry(plugin, key, value, ttl, tagged, delta)
            .await
    }

    async fn store_entry(
        &self,
        plugin: &str,
        key: &str,
        value: Option<Bytes>,
        ttl: Duration,
        tagged: Vec<(String, u64)>,
        delta: Duration,
    ) -> Result<Arc<Entry>, CacheError> {
        let config = &self.inner.config;
        if let Some(v) = &value
            && v.len() as u64 > config.max_value.as_u64()
        {
            return Err(CacheError::TooLarge(config.max_value.as_u64()));
        }
        if ttl.is_zero() {
            return Err(CacheError::Invalid("a cache ttl is at least 1 ms".into()));
        }
        let ttl = ttl.min(config.max_ttl);
        let entry = Arc::new(Entry {
            value,
            expires_at_ms: now_ms().saturating_add(millis_u64(ttl)),
            delta_ms: u32::try_from(delta.as_millis()).unwrap_or(u32::MAX),
            tags: tagged,
        });
        let name = l1_key(plugin, key);
        self.inner.l1.insert(
            name,
            Arc::new(Stored {
                keep: self.l1_keep(&entry),
                entry: (*entry).clone(),
            }),
        );
        if let Some(redis) = self.up() {
            let keep = ttl + config.stale_for;
            if let Err(err) = redis
                .client
                .set::<(), _, _>(
                    self.redis_key(redis, plugin, key),
                    entry.encode(),
                    Some(Expiration::PX(millis(keep))),
                    None,
                    false,
                )
                .await
            {
                self.redis_failed("set", &err);
            }
            self.publish(redis, plugin, Some(key.to_string()), None)
                .await;
        }
        Ok(entry)
    }

    /// The entry of `key`, fresh or stale-but-servable, that no tag
    /// invalidated: L1 first, then L2.
    async fn read(&self, plugin: &str, key: &str) -> Option<Arc<Entry>> {
        if let Some(entry) = self.read_l1(plugin, key).await {
            return Some(entry);
        }
        let redis = self.up()?;
        match redis
            .client
            .get::<Option<Bytes>, _>(self.redis_key(redis, plugin, key))
            .await
        {
            Ok(raw) => self.admit(plugin, key, raw).await,
            Err(err) => {
                self.redis_failed("get", &err);
                None
            }
        }
    }

    async fn read_l1(&self, plugin: &str, key: &str) -> Option<Arc<Entry>> {
        let name = l1_key(plugin, key);
        let stored = self.inner.l1.get(&name);
        let hit = match stored {
            Some(stored) if self.tags_current(plugin, &stored.entry).await => {
                Some(Arc::new(stored.entry.clone()))
            }
            Some(_) => {
                self.inner.l1.invalidate(&name);
                None
            }
            None => None,
        };
        self.inner.stats.lookup("l1", hit.is_some());
        hit
    }

    /// An L2 answer: decoded, checked against tag epochs, kept in L1.
    async fn admit(&self, plugin: &str, key: &str, raw: Option<Bytes>) -> Option<Arc<Entry>> {
        let entry = raw.as_ref().and_then(Entry::decode);
        let entry = match entry {
            Some(e) if self.tags_current(plugin, &e).await => Some(e),
            _ => None,
        };
        self.inner.stats.lookup("l2", entry.is_some());
        let entry = entry?;
        self.inner.l1.insert(
            l1_key(plugin, key),
            Arc::new(Stored {
                keep: self.l1_keep(&entry),
                entry: entry.clone(),
            }),
        );
        Some(Arc::new(entry))
    }

    /// How long L1 may keep `entry`: until it can no longer be served even
    /// stale, and with Redis at most `l1_max_ttl`.
    fn l1_keep(&self, entry: &Entry) -> Duration {
        let config = &self.inner.config;
        let left =
            Duration::from_millis(entry.expires_at_ms.saturating_sub(now_ms())) + config.stale_for;
        if self.inner.redis.is_some() {
            left.min(config.l1_max_ttl)
        } else {
            left
        }
    }

    fn servable_stale(&self, entry: &Entry, now: u64) -> bool {
        entry.value.is_some() && now < entry.expires_at_ms + millis_u64(self.inner.config.stale_for)
    }

    async fn tags_current(&self, plugin: &str, entry: &Entry) -> bool {
        for (tag, epoch) in &entry.tags {
            match self.tag_epoch(plugin, tag).await {
                Some(current) if *epoch >= current => {}
                _ => return false,
            }
        }
        true
    }

    /// The current epoch of a tag; `None` when it cannot be known (Redis
    /// down and not cached), which callers treat as invalidated.
    async fn tag_epoch(&self, plugin: &str, tag: &str) -> Option<u64> {
        let name = l1_key(plugin, tag);
        if let Some(epoch) = self.inner.tags.get(&name) {
            return Some(epoch);
        }
        let Some(redis) = &self.inner.redis else {
            return Some(self.inner.floor.load(Ordering::Relaxed));
        };
        if !redis.is_up() {
            return None;
        }
        match redis
            .client
            .get::<Option<u64>, _>(self.redis_tag(redis, plugin, tag))
            .await
        {
            Ok(epoch) => {
                let epoch = epoch.unwrap_or(0);
                self.inner.tags.insert(name, epoch);
                Some(epoch)
            }
            Err(err) => {
                self.redis_failed("get", &err);
                None
            }
        }
    }

    /// Redis, when configured and connected.
    fn up(&self) -> Option<&Redis> {
        let redis = self.inner.redis.as_ref()?;
        if redis.is_up() {
            return Some(redis);
        }
        self.inner.stats.redis_error("disconnected");
        self.warn("Redis is not connected: the cache serves from process memory");
        None
    }

    fn redis_failed(&self, op: &'static str, err: &fred::error::Error) {
        self.inner.stats.redis_error(op);
        self.warn(&format!(
            "Redis {op} failed ({err}): the cache falls back to process memory"
        ));
    }

    fn warn(&self, message: &str) {
        let mut warned = self
            .inner
            .warned_at
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if warned.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
            *warned = Some(Instant::now());
            tracing::warn!("{message}");
        }
    }

    fn redis_key(&self, redis: &Redis, plugin: &str, key: &str) -> String {
        format!("{}c:{}:{plugin}:{key}", redis.prefix, plugin.len())
    }

    fn redis_tag(&self, redis: &Redis, plugin: &str, tag: &str) -> String {
        format!("{}t:{}:{plugin}:{tag}", redis.prefix, plugin.len())
    }

    fn channel(redis: &Redis) -> String {
        format!("{}invalidate", redis.prefix)
    }
}

/// Invalidation messages between nodes.
impl CacheService {
    async fn publish(
        &self,
        redis: &Redis,
        plugin: &str,
        key: Option<String>,
        tag: Option<(String, u64)>,
    ) {
        let message = Invalidation {
            n: self.inner.node.clone(),
            p: plugin.to_string(),
            k: key,
            t: tag,
        };
        let Ok(text) = serde_json::to_string(&message) else {
            return;
        };
        if let Err(err) = redis
            .client
            .publish::<(), _, _>(Self::channel(redis), text)
            .await
        {
            self.redis_failed("publish", &err);
        }
    }

    /// Subscribes to the channel and applies what other nodes publish;
    /// flushes L1 when the subscription drops and when it is back.
    async fn listen(&self) {
        let Some(redis) = self.inner.redis.clone() else {
            return;
        };
        let weak = Arc::downgrade(&self.inner);
        let mut messages = redis.subscriber.message_rx();
        let mut reconnects = redis.subscriber.reconnect_rx();
        let mut errors = redis.subscriber.error_rx();
        let channel = Self::channel(&redis);
        if let Err(err) = redis.subscriber.subscribe(channel.clone()).await {
            tracing::warn!(%err, "cannot subscribe to cache invalidations yet; will when Redis is back");
        } else if let Some(inner) = weak.upgrade() {
            inner.subscribed.store(true, Ordering::Relaxed);
        }
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    message = messages.recv() => {
                        let Some(inner) = weak.upgrade() else { return };
                        match message {
                            Ok(message) => {
                                if let Some(text) = message.value.as_string() {
                                    apply(&inner, &text);
                                }
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                                // Missed messages: forget everything local.
                                CacheService { inner }.flush_l1();
                            }
                            Err(_) => return,
                        }
                    }
                    event = reconnects.recv() => {
                        let Some(inner) = weak.upgrade() else { return };
                        if event.is_err() { return; }
                        inner.subscribed.store(true, Ordering::Relaxed);
                        tracing::info!("Redis is back: the cache flushed its process tier");
                        CacheService { inner }.flush_l1();
                    }
                    event = errors.recv() => {
                        let Some(inner) = weak.upgrade() else { return };
                        if event.is_err() { return; }
                        // The subscription dropped: flush once. Failed
                        // reconnection attempts after it leave L1 alone,
                        // since it is all the cache has until Redis is back.
                        let down = inner.redis.as_ref().is_some_and(|r| !r.is_up());
                        if down && inner.subscribed.swap(false, Ordering::Relaxed) {
                            CacheService { inner }.flush_l1();
                        }
                    }
                }
            }
        });
    }
}

fn apply(inner: &Inner, text: &str) {
    let Ok(message) = serde_json::from_str::<Invalidation>(text) else {
        return;
    };
    if message.n == inner.node {
        return;
    }
    if let Some(key) = message.k {
        inner.l1.invalidate(&l1_key(&message.p, &key));
        inner.stats.invalidation("key", "remote");
    }
    if let Some((tag, epoch)) = message.t {
        let name = l1_key(&message.p, &tag);
        let current = inner.tags.get(&name).unwrap_or(0);
        inner.tags.insert(name, current.max(epoch));
        inner.stats.invalidation("tag", "remote");
    }
}

/// Single-flight bookkeeping.
enum Joined {
    Leader(Arc<Flight>),
    Follower(Arc<Flight>),
}

impl CacheService {
    fn flights(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Flight>>> {
        self.inner.flights.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins the load of `name` in progress, or starts one.
    fn join(&self, name: &str) -> Joined {
        let mut flights = self.flights();
        if let Some(flight) = flights.get(name) {
            return Joined::Follower(flight.clone());
        }
        let flight = Arc::new(Flight {
            done: watch::Sender::new(None),
        });
        flights.insert(name.to_string(), flight.clone());
        Joined::Leader(flight)
    }

    /// Starts a load of `name` only if none is in progress (early refresh).
    fn begin(&self, name: &str) -> Option<Arc<Flight>> {
        match self.join(name) {
            Joined::Leader(flight) => Some(flight),
            Joined::Follower(_) => None,
        }
    }

    fn ticket(&self, plugin: &str, key: &str, flight: Option<Arc<Flight>>) -> LoadTicket {
        LoadTicket {
            cache: self.clone(),
            plugin: plugin.to_string(),
            key: key.to_string(),
            flight,
            started: Instant::now(),
            finished: false,
        }
    }

    fn land(&self, plugin: &str, key: &str, flight: &Arc<Flight>, outcome: Outcome) {
        let name = l1_key(plugin, key);
        let mut flights = self.flights();
        if flights.get(&name).is_some_and(|f| Arc::ptr_eq(f, flight)) {
            flights.remove(&name);
        }
        drop(flights);
        flight.done.send_replace(Some(outcome));
    }
}

impl LoadTicket {
    /// Stores the loaded value and hands it to the waiters.
    pub async fn fill(
        mut self,
        value: Option<Bytes>,
        ttl: Duration,
        tags: &[String],
    ) -> Result<(), CacheError> {
        self.finished = true;
        let elapsed = self.started.elapsed();
        let stored = self
            .cache
            .store(&self.plugin, &self.key, value, ttl, tags, elapsed)
            .await;
        self.cache.inner.stats.load(stored.is_ok(), elapsed);
        let outcome = match &stored {
            Ok(entry) => Outcome::Filled(entry.clone()),
            Err(_) => Outcome::Failed,
        };
        if let Some(flight) = self.flight.take() {
            self.cache.land(&self.plugin, &self.key, &flight, outcome);
        }
        stored.map(|_| ())
    }

    /// The load failed; waiters get a stale value or load themselves.
    pub fn fail(mut self) {
        self.failed();
    }

    /// The load worked but its result is not to be cached: waiters load
    /// their own at once (no stale value, no waiting in line).
    pub fn abandon(mut self) {
        self.finished = true;
        if let Some(flight) = self.flight.take() {
            self.cache
                .land(&self.plugin, &self.key, &flight, Outcome::Uncacheable);
        }
    }

    fn failed(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.cache.inner.stats.load(false, self.started.elapsed());
        if let Some(flight) = self.flight.take() {
            self.cache
                .land(&self.plugin, &self.key, &flight, Outcome::Failed);
        }
    }
}

impl Drop for LoadTicket {
    fn drop(&mut self) {
        self.failed();
    }
}

fn hit(entry: &Entry) -> Fetched {
    match &entry.value {
        Some(value) => Fetched::Hit(value.clone()),
        None => Fetched::Absent,
    }
}

/// XFetch: refresh early with a probability that rises as expiry nears,
/// scaled by how long the value took to load.
fn early_refresh(entry: &Entry, now: u64) -> bool {
    if entry.delta_ms == 0 {
        return false;
    }
    // A uniform draw in (0, 1] from the v4 uuid generator's randomness.
    let draw = (uuid::Uuid::new_v4().as_u128() >> 75) as f64 + 1.0;
    let unit = draw / (1u64 << 53) as f64;
    let gap = f64::from(entry.delta_ms) * BETA * -unit.ln();
    now as f64 + gap >= entry.expires_at_ms as f64
}

fn l1_key(plugin: &str, key: &str) -> String {
    format!("{plugin}\u{1f}{key}")
}

fn millis_u64(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// L1 keeps each entry as long as [`Stored::keep`] says.
struct KeepFor;

impl moka::Expiry<String, Arc<Stored>> for KeepFor {
    fn expire_after_create(
        &self,
        _key: &String,
        stored: &Arc<Stored>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(stored.keep)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        stored: &Arc<Stored>,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(stored.keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(expires_in_ms: u64, delta_ms: u32, now: u64) -> Entry {
        Entry {
            value: Some(Bytes::from_static(b"v")),
            expires_at_ms: now + expires_in_ms,
            delta_ms,
            tags: Vec::new(),
        }
    }

    #[test]
    fn early_refresh_grows_as_expiry_nears_and_with_load_time() {
        let now = 1_000_000;
        let share = |e: &Entry| (0..2000).filter(|_| early_refresh(e, now)).count();
        // Far from expiry relative to the load time: practically never.
        assert_eq!(share(&entry(100_000, 1, now)), 0);
        // Never loaded through fetch (no load time): never.
        assert_eq!(share(&entry(1, 0, now)), 0);
        // Expiry within a small part of the load time: almost always.
        assert!(share(&entry(10, 1000, now)) > 1900);
        // In between: some, not all (P = e^-1 ≈ 37 %).
        let some = share(&entry(1000, 1000, now));
        assert!((500..1000).contains(&some), "{some}");
    }

    #[tokio::test]
    async fn waiters_on_an_uncacheable_answer_load_at_once() {
        let cache = CacheService::start(&CacheConfig::default(), None, CacheStats::default()).await;
        let Fetched::Load(leader) = cache.fetch("p", "k").await.expect("fetch") else {
            panic!("a miss is loaded");
        };
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.fetch("p", "k").await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        leader.abandon();
        // All three get a ticket of their own at once; none waits for
        // another's load.
        let tickets = tokio::time::timeout(Duration::from_millis(500), async {
            let mut tickets = Vec::new();
            for waiter in waiters {
                tickets.push(waiter.await.expect("joined").expect("fetch"));
            }
            tickets
        })
        .await
        .expect("waiters were not released together");
        assert!(tickets.iter().all(|t| matches!(t, Fetched::Load(_))));
    }

    #[tokio::test]
    async fn a_failed_load_serves_the_stale_value_to_waiters() {
        let config = CacheConfig {
            load_wait: Duration::from_secs(2),
            ..CacheConfig::default()
        };
        let cache = CacheService::start(&config, None, CacheStats::default()).await;
        cache
            .set(
                "p",
                "k",
                Some(Bytes::from_static(b"old")),
                Duration::from_millis(20),
                &[],
            )
            .await
            .expect("stored");
        tokio::time::sleep(Duration::from_millis(40)).await;
        let Fetched::Load(ticket) = cache.fetch("p", "k").await.expect("fetch") else {
            panic!("an expired entry is loaded");
        };
        let waiter = {
            let cache = cache.clone();
            tokio::spawn(async move { cache.fetch("p", "k").await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(ticket);
        match waiter.await.expect("joined").expect("fetch") {
            Fetched::Hit(value) => assert_eq!(value, Bytes::from_static(b"old")),
            other => panic!("expected the stale value, got {other:?}"),
        }
    }
}

//! Leases on names: the `lock` capability, and the runtime's own
//! coordination.
//!
//! A lease is taken for a ttl and carries a **fencing token** that strictly
//! increases per name and is never reused. It is a lease, not a mutex: a
//! holder paused past its ttl (GC, SIGSTOP, a slow disk) still believes it
//! holds it, so whatever the lease guards must reject writes carrying a
//! token older than one it has seen (the SDK's `sql::fenced_write`).
//!
//! - **Redis** (`[redis]` configured): the lock is a key set with `NX PX`
//!   to `<owner>:<token>`, the token from `INCR` on a per-name counter that
//!   never expires, all in one script; extend and release compare the value
//!   first (compare-and-expire, compare-and-delete scripts). An acquire
//!   that got no answer may still run when Redis resumes; it is followed
//!   by a delete of the lock if that attempt's owner id holds it.
//! - **In process** (embedded default): the same semantics in a map; tokens
//!   start at the Unix time in microseconds when the node started, so they
//!   keep increasing across restarts.
//!
//! `valid-until` is counted from when the attempt started, minus a safety
//! margin for clock drift (2 ms + 1 % of the ttl), as Redlock does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fred::interfaces::{ClientLike, KeysInterface, LuaInterface};
use tokio::sync::Notify;

use super::redis::Redis;
use crate::config::LockConfig;
use crate::monitor::LockStats;

/// Longest lock name, in bytes.
pub const MAX_NAME: usize = 256;

const ACQUIRE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. token, 'NX', 'PX', ARGV[2])
return token
";

const EXTEND: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Deletes the lock if an attempt whose owner id is `ARGV[1]` holds it
/// (its value is `<id>:<token>`, the token unknown to the caller).
const ABANDON: &str = r"
local value = redis.call('GET', KEYS[1])
if value and string.sub(value, 1, #ARGV[1] + 1) == ARGV[1] .. ':' then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// How often an abandoned attempt's clean-up asks Redis again.
const ABANDON_RETRY: Duration = Duration::from_millis(100);

/// Why a lock call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockError {
    /// Not free within the wait.
    #[error("the lock was not free within the wait")]
    Timeout,
    /// The lease ran out or was taken over.
    #[error("the lease was lost (it ran out or another holder took the lock)")]
    Lost,
    /// The store does not answer.
    #[error("the lock store is unavailable: {0}")]
    Unavailable(String),
    /// A bad name, ttl or wait.
    #[error("{0}")]
    Invalid(String),
}

/// Locks of one runtime. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LockService {
    store: Store,
    config: LockConfig,
    stats: LockStats,
}

#[derive(Debug, Clone)]
enum Store {
    Memory(Arc<Memory>),
    Redis(Redis),
}

#[derive(Debug)]
struct Memory {
    held: Mutex<HashMap<String, Held>>,
    next_token: AtomicU64,
    released: Notify,
}

#[derive(Debug, Clone, PartialEq)]
struct Held {
    owner: String,
    expires: Instant,
}

/// A held lock. Released when dropped.
#[derive(Debug)]
pub struct Lease {
    service: LockService,
    key: String,
    /// `<owner>:<token>`: what the store holds while this lease is current.
    owner: String,
    token: u64,
    valid_until_ms: u64,
    released: bool,
}

impl LockService {
    /// Locks on `redis` when given, else in process.
    pub fn new(config: &LockConfig, redis: Option<Redis>, stats: LockStats) -> Self {
        let store = match redis {
            Some(redis) => Store::Redis(redis),
            None => Store::Memory(Arc::new(Memory {
                held: Mutex::default(),
                next_token: AtomicU64::new(now_micros().max(1)),
                released: Notify::new(),
            })),
        };
        LockService {
            store,
            config: config.clone(),
            stats,
        }
    }

    /// Takes the runtime's own lock `name` (a scope no plugin can name:
    /// plugin names have no `:`), outside the bounds set for plugins.
    pub async fn acquire_runtime(
        &self,
        name: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Lease, LockError> {
        self.take(&format!("trellis:runtime:{name}"), ttl, wait)
            .await
    }

    /// Takes `scope`'s lock `name` for `ttl`, waiting up to `wait`.
    pub async fn acquire(
        &self,
        scope: &str,
        name: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Lease, LockError> {
        if name.is_empty() || name.len() > MAX_NAME || name.chars().any(char::is_control) {
            return Err(LockError::Invalid(format!(
                "a lock name is 1 to {MAX_NAME} bytes without control characters"
            )));
        }
        self.check_ttl(ttl)?;
        if wait > self.config.max_wait {
            return Err(LockError::Invalid(format!(
                "a lock wait is at most {}",
                humantime::format_duration(self.config.max_wait)
            )));
        }
        self.take(&format!("{}:{scope}:{name}", scope.len()), ttl, wait)
            .await
    }

    async fn take(&self, key: &str, ttl: Duration, wait: Duration) -> Result<Lease, LockError> {
        let key = key.to_string();
        let started = Instant::now();
        let started_ms = now_millis();
        let mut pause = Duration::from_millis(2);
        let result = loop {
            match self.try_once(&key, ttl).await {
                Ok(Some((owner, token))) => {
                    break Ok(Lease {
                        service: self.clone(),
                        key,
                        owner,
                        token,
                        valid_until_ms: valid_until(started_ms, ttl),
                        released: false,
                    });
                }
                Ok(None) => {}
                Err(err) => break Err(err),
            }
            let left = wait.saturating_sub(started.elapsed());
            if left.is_zero() {
                break Err(LockError::Timeout);
            }
            // Jittered backoff, woken early by a local release.
            let jitter = Duration::from_micros(u64::from(uuid::Uuid::new_v4().as_u128() as u16));
            let nap = (pause + jitter / 10).min(left);
            match &self.store {
                Store::Memory(memory) => {
                    let _ = tokio::time::timeout(nap, memory.released.notified()).await;
                }
                Store::Redis(_) => tokio::time::sleep(nap).await,
            }
            pause = (pause * 2).min(Duration::from_millis(50));
        };
        self.stats.acquired(
            match &result {
                Ok(_) => "acquired",
                Err(LockError::Timeout) => "timeout",
                Err(LockError::Unavailable(_)) => "unavailable",
                Err(_) => "invalid",
            },
            started.elapsed(),
        );
        result
    }

    /// A plugin's ttl: 1 ms to `lock.max_ttl`.
    fn check_ttl(&self, ttl: Duration) -> Result<(), LockError> {
        if ttl < Duration::from_millis(1) || ttl > self.config.max_ttl {
            return Err(LockError::Invalid(format!(
                "a lock ttl is 1 ms to {}",
                humantime::format_duration(self.config.max_ttl)
            )));
        }
        Ok(())
    }

    /// Whether the store answers (for health).
    pub fn is_up(&self) -> bool {
        match &self.store {
            Store::Memory(_) => true,
            Store::Redis(redis) => redis.client.is_connected(),
        }
    }

    /// One attempt: the owner value and token when taken.
    async fn try_once(&self, key: &str, ttl: Duration) -> Result<Option<(String, u64)>, LockError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        match &self.store {
            Store::Memory(memory) => {
                let token = memory.next_token.fetch_add(1, Ordering::Relaxed);
                let mut held = memory.held.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                if held.get(key).is_some_and(|h| h.expires > now) {
                    return Ok(None);
                }
                let owner = format!("{id}:{token}");
                held.insert(
                    key.to_string(),
                    Held {
                        owner: owner.clone(),
                        expires: now + ttl,
                    },
                );
                Ok(Some((owner, token)))
            }
            Store::Redis(redis) => {
                let client = available(redis)?;
                let answer: Result<u64, _> = client
                    .eval(
                        ACQUIRE,
                        vec![
                            format!("{}l:{key}", redis.prefix),
                            format!("{}f:{key}", redis.prefix),
                        ],
                        vec![id.clone(), millis(ttl).to_string()],
                    )
                    .await;
                match answer {
                    Ok(token) => Ok((token > 0).then(|| (format!("{id}:{token}"), token))),
                    Err(err) => {
                        // Sent but unanswered (Redis slow or frozen): it may
                        // still run, leaving a lease nobody holds.
                        abandon(redis, format!("{}l:{key}", redis.prefix), id, ttl);
                        Err(unavailable(err))
                    }
                }
            }
        }
    }

    /// Runs a compare-then-act on the lock of `lease`: `true` when the
    /// store still held it.
    async fn compare(&self, lease: &Lease, act: Act) -> Result<bool, LockError> {
        match &self.store {
            Store::Memory(memory) => {
                let mut held = memory.held.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                let current = held
                    .get(&lease.key)
                    .is_some_and(|h| h.owner == lease.owner && h.expires > now);
                if current {
                    match act {
                        Act::Extend(ttl) => {
                            if let Some(h) = held.get_mut(&lease.key) {
                                h.expires = now + ttl;
                            }
                        }
                        Act::Release => {
                            held.remove(&lease.key);
                            memory.released.notify_waiters();
                        }
                        Act::Check => {}
                    }
                }
                Ok(current)
            }
            Store::Redis(redis) => {
                let client = available(redis)?;
                let key = format!("{}l:{}", redis.prefix, lease.key);
                let answer: i64 = match act {
                    Act::Extend(ttl) => client
                        .eval(
                            EXTEND,
                            vec![key],
                            vec![lease.owner.clone(), millis(ttl).to_string()],
                        )
                        .await
                        .map_err(unavailable)?,
                    Act::Release => client
                        .eval(RELEASE, vec![key], vec![lease.owner.clone()])
                        .await
                        .map_err(unavailable)?,
                    Act::Check => {
                        let value: Option<String> = client.get(key).await.map_err(unavailable)?;
                        i64::from(value.as_deref() == Some(lease.owner.as_str()))
                    }
                };
                Ok(answer == 1)
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Act {
    Extend(Duration),
    Release,
    Check,
}

impl Lease {
    /// The fencing token.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// Unix milliseconds until which the lease is safe.
    pub fn valid_until_ms(&self) -> u64 {
        self.valid_until_ms
    }

    /// Pushes expiry to `ttl` from now; `Lost` if no longer the holder.
    pub async fn extend(&mut self, ttl: Duration) -> Result<(), LockError> {
        self.service.check_ttl(ttl)?;
        let started_ms = now_millis();
        if self.service.compare(self, Act::Extend(ttl)).await? {
            self.valid_until_ms = valid_until(started_ms, ttl);
            Ok(())
        } else {
            self.service.stats.lost();
            Err(LockError::Lost)
        }
    }

    /// Whether the store still records this lease as the holder.
    pub async fn is_held(&self) -> Result<bool, LockError> {
        self.service.compare(self, Act::Check).await
    }

    /// Releases now; `Lost` if it had already run out or been taken.
    pub async fn release(mut self) -> Result<(), LockError> {
        self.released = true;
        if self.service.compare(&self, Act::Release).await? {
            Ok(())
        } else {
            self.service.stats.lost();
            Err(LockError::Lost)
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        // Dropped unreleased (handle dropped, instance trapped): release in
        // the background; a lease that already ran out is simply gone.
        let lease = Lease {
            service: self.service.clone(),
            key: std::mem::take(&mut self.key),
            owner: std::mem::take(&mut self.owner),
            token: self.token,
            valid_until_ms: self.valid_until_ms,
            released: true,
        };
        let release = async move {
            let _ = lease.service.compare(&lease, Act::Release).await;
        };
        match &self.service.store {
            Store::Memory(_) => {
                // No I/O: release now, so the next holder need not wait.
                futures_util::FutureExt::now_or_never(release);
            }
            Store::Redis(_) => {
                if let Ok(handle) = tokio::runtime::Handle::try_current() {
                    handle.spawn(release);
                }
            }
        }
    }
}

/// Cleans up after an acquire attempt `id` on `key` that got no answer: as
/// soon as Redis answers again, deletes the lock if that attempt took it,
/// so a frozen Redis leaves no lease behind once it resumes. Gives up when
/// the lease would have run out anyway.
fn abandon(redis: &Redis, key: String, id: String, ttl: Duration) {
    let client = redis.client.clone();
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    handle.spawn(async move {
        let until = Instant::now() + ttl;
        // The attempt may reach Redis after a first clean-up ran (it was
        // queued behind it on another connection): ask once more after
        // Redis first answers.
        let mut answered = None;
        while Instant::now() < until {
            let result: Result<i64, _> = client
                .eval(ABANDON, vec![key.clone()], vec![id.clone()])
                .await;
            match result {
                Ok(1) => {
                    tracing::info!(key, "removed a lock taken by an attempt that timed out");
                    return;
                }
                Ok(_)
                    if answered
                        .is_some_and(|at: Instant| at.elapsed() >= Duration::from_secs(1)) =>
                {
                    return;
                }
                Ok(_) => {
                    answered.get_or_insert_with(Instant::now);
                }
                Err(_) => {}
            }
            tokio::time::sleep(ABANDON_RETRY).await;
        }
    });
}

/// When a lease taken (or extended) at `started_ms` for `ttl` stops being
/// safe: the ttl less a margin for clock drift (2 ms + 1 %).
fn valid_until(started_ms: u64, ttl: Duration) -> u64 {
    let margin = Duration::from_millis(2) + ttl / 100;
    started_ms + millis(ttl.saturating_sub(margin))
}

fn available(redis: &Redis) -> Result<&fred::clients::Client, LockError> {
    redis
        .connected()
        .ok_or_else(|| LockError::Unavailable("Redis is not connected".into()))
}

fn unavailable(err: fred::error::Error) -> LockError {
    LockError::Unavailable(err.to_string())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn now_millis() -> u64 {
    now_micros() / 1000
}

fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> LockService {
        LockService::new(
            &LockConfig::default(),
            None,
            crate::monitor::Metrics::new().lock_stats(),
        )
    }

    #[tokio::test]
    async fn in_process_leases_fence_expire_and_refuse_strangers() {
        let locks = service();
        let ms = Duration::from_millis;
        let first = locks.acquire("p", "a", ms(50), ms(0)).await.expect("free");
        assert_eq!(
            locks.acquire("p", "a", ms(50), ms(0)).await.err(),
            Some(LockError::Timeout)
        );
        // Another plugin's lock of the same name is another lock.
        let other = locks.acquire("q", "a", ms(50), ms(0)).await.expect("free");
        assert!(other.token() > first.token());
        tokio::time::sleep(ms(60)).await;
        // Ran out: a new holder, a larger token; the old one lost it.
        let second = locks
            .acquire("p", "a", ms(1000), ms(0))
            .await
            .expect("expired");
        assert!(second.token() > first.token());
        assert_eq!(first.is_held().await, Ok(false));
        assert_eq!(first.release().await, Err(LockError::Lost));
        assert_eq!(second.is_held().await, Ok(true));
        // Dropping releases at once; a waiter gets it.
        let waiter = {
            let locks = locks.clone();
            tokio::spawn(async move { locks.acquire("p", "a", ms(100), ms(2000)).await })
        };
        tokio::time::sleep(ms(20)).await;
        drop(second);
        let third = waiter.await.expect("joined").expect("woken by the release");
        assert!(third.valid_until_ms() > now_millis());
    }
}

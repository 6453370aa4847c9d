//! Read replicas (PostgreSQL streaming standbys): lag sampling and the
//! choice of where a `replica-ok` read goes.
//!
//! A sampler task compares each replica's replay position with the
//! primary's WAL position every `lag_sample_interval`. A read goes to a
//! healthy replica within `max_replica_lag_bytes` and `max_replica_lag`;
//! a read that must see a write (a consistency token: the primary's LSN
//! after that write) goes only to a replica that has replayed past it,
//! waiting up to `replica_wait`, else to the primary. No usable replica:
//! the primary.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::PostgresConfig;

/// A replica's state as last sampled.
#[derive(Debug, Default)]
pub(super) struct ReplicaState {
    /// Where it is shown in logs (`host:port`).
    pub(super) name: String,
    replay_lsn: AtomicU64,
    lag_bytes: AtomicU64,
    lag_ms: AtomicU64,
    healthy: AtomicBool,
}

/// The replicas of one deployment and the routing bounds.
#[derive(Debug)]
pub(super) struct Replicas {
    /// Admin connection options per replica (plugins log in with their role).
    pub(super) options: Vec<PgConnectOptions>,
    pub(super) states: Vec<Arc<ReplicaState>>,
    max_lag_bytes: u64,
    max_lag: Duration,
    wait: Duration,
    /// Causal reads by principal: the header that names it and how long
    /// after its write.
    causal: (String, Duration),
    next: AtomicUsize,
    /// replica-ok reads: on a replica, on the primary because none was
    /// usable, on the primary because none had caught up.
    reads: [AtomicU64; 3],
}

/// replica-ok reads by where they ran, and per replica its name, lag in
/// bytes and seconds, and health.
pub type ReplicaStats = (Vec<(&'static str, u64)>, Vec<(String, u64, f64, bool)>);

/// Why a replica-ok read went to the primary (logged at debug level).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fallback {
    /// No replica is healthy and close enough.
    NoneUsable,
    /// No replica replayed the request's write within the wait.
    NotCaughtUp,
}

impl Replicas {
    /// Parses the replica URLs and starts the lag sampler against `primary`.
    pub(super) fn start(config: &PostgresConfig, primary: PgPool) -> Result<Arc<Replicas>, String> {
        let mut options = Vec::new();
        let mut states = Vec::new();
        let mut admins = Vec::new();
        for url in &config.replicas {
            let opts: PgConnectOptions = url
                .parse()
                .map_err(|e| format!("sql.postgres.replicas: {url}: {e}"))?;
            let admin = PgPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(config.lag_sample_interval.max(Duration::from_millis(500)))
                .connect_lazy_with(opts.clone());
            states.push(Arc::new(ReplicaState {
                name: format!("{}:{}", opts.get_host(), opts.get_port()),
                ..ReplicaState::default()
            }));
            options.push(opts);
            admins.push(admin);
        }
        let replicas = Arc::new(Replicas {
            options,
            states,
            max_lag_bytes: config.max_replica_lag_bytes.as_u64(),
            max_lag: config.max_replica_lag,
            wait: config.replica_wait,
            causal: (
                config.principal_header.to_ascii_lowercase(),
                config.causal_window,
            ),
            next: AtomicUsize::new(0),
            reads: Default::default(),
        });
        if !admins.is_empty() {
            let sampler = Arc::downgrade(&replicas);
            let interval = config.lag_sample_interval;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(interval);
                loop {
                    tick.tick().await;
                    let Some(replicas) = sampler.upgrade() else {
                        break;
                    };
                    replicas.sample(&primary, &admins).await;
                }
            });
        }
        Ok(replicas)
    }

    /// The principal header and the causal window, when there are replicas
    /// and the window is on.
    pub(super) fn causal(&self) -> Option<(&str, Duration)> {
        (!self.states.is_empty() && !self.causal.1.is_zero())
            .then_some((self.causal.0.as_str(), self.causal.1))
    }

    /// Counts where a replica-ok read ran.
    pub(super) fn count(&self, outcome: Result<(), Fallback>) {
        let slot = match outcome {
            Ok(()) => 0,
            Err(Fallback::NoneUsable) => 1,
            Err(Fallback::NotCaughtUp) => 2,
        };
        self.reads[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// replica-ok reads so far by where they ran, and each replica's
    /// (name, lag bytes, lag seconds, healthy) as last sampled.
    pub(super) fn stats(&self) -> ReplicaStats {
        let reads = ["replica", "primary_none_usable", "primary_not_caught_up"]
            .into_iter()
            .zip(&self.reads)
            .map(|(name, n)| (name, n.load(Ordering::Relaxed)))
            .collect();
        let replicas = self
            .states
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    s.lag_bytes.load(Ordering::Relaxed),
                    s.lag_ms.load(Ordering::Relaxed) as f64 / 1000.0,
                    s.healthy.load(Ordering::Relaxed),
                )
            })
            .collect();
        (reads, replicas)
    }

    /// Whether any replica is configured.
    pub(super) fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    async fn sample(&self, primary: &PgPool, admins: &[PgPool]) {
        let primary_lsn = match sqlx::query_as::<_, (String,)>("SELECT pg_current_wal_lsn()::text")
            .fetch_one(primary)
            .await
        {
            Ok((lsn,)) => parse_lsn(&lsn),
            Err(_) => None,
        };
        for (state, admin) in self.states.iter().zip(admins) {
            let sampled = sqlx::query_as::<_, (Option<String>, Option<i64>)>(
                "SELECT pg_last_wal_replay_lsn()::text, \
                 (EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) * 1000)::bigint",
            )
            .fetch_one(admin)
            .await;
            match sampled {
                Ok((Some(replay), lag_ms)) => {
                    let replay = parse_lsn(&replay).unwrap_or(0);
                    state.replay_lsn.fetch_max(replay, Ordering::Relaxed);
                    let lag = primary_lsn.map(|p| p.saturating_sub(replay)).unwrap_or(0);
                    state.lag_bytes.store(lag, Ordering::Relaxed);
                    state
                        .lag_ms
                        .store(lag_ms.unwrap_or(0).max(0) as u64, Ordering::Relaxed);
                    if !state.healthy.swap(true, Ordering::Relaxed) {
                        tracing::info!(replica = %state.name, "replica usable");
                    }
                }
                // Not a standby, or not reachable: not usable.
                Ok((None, _)) | Err(_) => {
                    if state.healthy.swap(false, Ordering::Relaxed) {
                        tracing::warn!(replica = %state.name, "replica unusable");
                    }
                }
            }
        }
    }

    /// A replica is usable when healthy and within both lag bounds (time
    /// only counts while it is behind: an idle primary makes no new WAL).
    fn usable(&self, state: &ReplicaState) -> bool {
        let bytes = state.lag_bytes.load(Ordering::Relaxed);
        state.healthy.load(Ordering::Relaxed)
            && bytes <= self.max_lag_bytes
            && (bytes == 0
                || state.lag_ms.load(Ordering::Relaxed) <= self.max_lag.as_millis() as u64)
    }

    /// Marks a replica unusable after a failed read (the sampler revives it).
    pub(super) fn failed(&self, index: usize) {
        if let Some(state) = self.states.get(index) {
            state.healthy.store(false, Ordering::Relaxed);
        }
    }

    /// The index of the replica a read should use, or why the primary.
    /// `min_lsn`: the read must see the write at that position; `probe`
    /// asks a replica for its replay position now (used while waiting).
    pub(super) async fn choose<F, Fut>(
        &self,
        min_lsn: Option<u64>,
        probe: F,
    ) -> Result<usize, Fallback>
    where
        F: Fn(usize) -> Fut,
        Fut: Future<Output = Option<u64>>,
    {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.states.len();
        let usable: Vec<usize> = (0..n)
            .map(|i| (start + i) % n)
            .filter(|&i| self.usable(&self.states[i]))
            .collect();
        let Some(&first) = usable.first() else {
            return Err(Fallback::NoneUsable);
        };
        let Some(min_lsn) = min_lsn else {
            return Ok(first);
        };
        let deadline = Instant::now() + self.wait;
        loop {
            for &i in &usable {
                let state = &self.states[i];
                if state.replay_lsn.load(Ordering::Relaxed) >= min_lsn {
                    return Ok(i);
                }
                if let Some(replayed) = probe(i).await {
                    state.replay_lsn.fetch_max(replayed, Ordering::Relaxed);
                    if replayed >= min_lsn {
                        return Ok(i);
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(Fallback::NotCaughtUp);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// `0/3016038` → 0x0_03016038.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.trim().split_once('/')?;
    let hi = u64::from_str_radix(hi, 16).ok()?;
    let lo = u64::from_str_radix(lo, 16).ok()?;
    Some((hi << 32) | lo)
}

/// 0x0_03016038 → `0/3016038`.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_round_trips() {
        assert_eq!(parse_lsn("0/3016038"), Some(0x3016038));
        assert_eq!(parse_lsn("1A/0"), Some(0x1A_0000_0000));
        assert_eq!(format_lsn(0x1A_0301_6038), "1A/3016038");
        assert_eq!(parse_lsn("nonsense"), None);
    }
}

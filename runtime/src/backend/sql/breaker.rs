//! Failing fast while PostgreSQL is down.
//!
//! A pool that cannot connect retries until `sql.pool.acquire_timeout`
//! (5 s by default), so without a breaker every request that needs the
//! database, and every readiness probe, would hold its connection for that
//! long before answering 503. The [`Breaker`] of a database watches the
//! work done on it: when getting a connection takes longer than
//! [`SUSPECT_AFTER`], or a statement fails for want of a connection, a
//! probe opens a connection of its own (at most [`PROBE_TIMEOUT`]). If the
//! probe fails, the breaker opens: work waiting on that database gives up at
//! once, and new work is refused without waiting (`SqlError::Unavailable`,
//! a 503 with `Retry-After`). The probe repeats every [`PROBE_INTERVAL`]
//! and closes the breaker at its first success, so recovery takes no
//! restart and at most that interval.
//!
//! A busy but healthy database (a pool at its limit, a slow statement)
//! also trips the suspicion; its probe succeeds and nothing changes, and
//! slowness starts no other probe for [`PROBE_INTERVAL`].
//!
//! Guarded: plugin pools (statements, transactions), readiness, and the
//! job queue (enqueues, the job API, workers). The runtime store (plugin
//! versions, alert state) is not: it is off the request path.
//!
//! Layer: `backend` (part of `backend::sql`).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tokio::sync::watch;

use super::SqlError;

/// Getting a connection slower than this starts a probe.
pub(super) const SUSPECT_AFTER: Duration = Duration::from_millis(50);
/// The longest a probe waits for a connection.
pub(super) const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How often an open breaker probes again.
pub(super) const PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// The breaker of one database server; clones share it. SQLite has none
/// ([`Breaker::off`]): its files do not go away.
#[derive(Debug, Clone, Default)]
pub struct Breaker(Option<Arc<Inner>>);

#[derive(Debug)]
struct Inner {
    /// How logs and errors name the server.
    name: String,
    options: PgConnectOptions,
    /// Why the server is down; `None` while it is up.
    down: watch::Sender<Option<String>>,
    probing: AtomicBool,
    /// When the last probe that found the server up ended (ms since the
    /// breaker was made): slowness within [`PROBE_INTERVAL`] of it starts
    /// no probe.
    last_up: AtomicU64,
    made: Instant,
}

impl Breaker {
    /// A breaker for the server `options` connect to, named `name` in logs
    /// and errors.
    pub(super) fn new(name: String, options: PgConnectOptions) -> Breaker {
        Breaker(Some(Arc::new(Inner {
            name,
            options,
            down: watch::Sender::new(None),
            probing: AtomicBool::new(false),
            last_up: AtomicU64::new(0),
            made: Instant::now(),
        })))
    }

    /// One that never opens.
    pub(super) fn off() -> Breaker {
        Breaker(None)
    }

    /// Why the server is down, while the breaker is open.
    pub fn down(&self) -> Option<SqlError> {
        let inner = self.0.as_ref()?;
        let why = inner.down.borrow().clone()?;
        Some(inner.unavailable(&why))
    }

    /// Runs `work` (getting a connection, a statement on a fresh one)
    /// unless the server is known to be down, and gives it up as soon as
    /// the server is found down. The outer error is the breaker's; the
    /// inner result is the work's own.
    pub(super) async fn guard<T>(
        &self,
        work: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<Result<T, sqlx::Error>, SqlError> {
        self.guard_with(work, is_connection_error).await
    }

    /// As [`Breaker::guard`] for work that maps its errors already (the job
    /// queue's operations): `Unavailable` says the server was not reached.
    pub(crate) async fn guard_sql<T>(
        &self,
        work: impl Future<Output = Result<T, SqlError>>,
    ) -> Result<T, SqlError> {
        let lost = |err: &SqlError| matches!(err, SqlError::Unavailable(_));
        self.guard_with(work, lost).await?
    }

    async fn guard_with<T, E>(
        &self,
        work: impl Future<Output = Result<T, E>>,
        lost: impl Fn(&E) -> bool,
    ) -> Result<Result<T, E>, SqlError> {
        let Some(inner) = &self.0 else {
            return Ok(work.await);
        };
        if let Some(err) = self.down() {
            return Err(err);
        }
        let mut down = inner.down.subscribe();
        let work = std::pin::pin!(work);
        let suspect = std::pin::pin!(tokio::time::sleep(SUSPECT_AFTER));
        let (mut work, mut suspect) = (work, suspect);
        let mut suspected = false;
        loop {
            tokio::select! {
                done = work.as_mut() => {
                    if let Err(err) = &done
                        && lost(err)
                    {
                        inner.probe();
                    }
                    return Ok(done);
                }
                () = suspect.as_mut(), if !suspected => {
                    suspected = true;
                    if !inner.recently_up() {
                        inner.probe();
                    }
                }
                Ok(()) = down.changed() => {
                    if let Some(err) = self.down() {
                        return Err(err);
                    }
                }
            }
        }
    }
}

impl Inner {
    fn unavailable(&self, why: &str) -> SqlError {
        SqlError::Unavailable(format!("{} is unreachable: {why}", self.name))
    }

    /// Whether a probe found the server up within the last
    /// [`PROBE_INTERVAL`].
    fn recently_up(&self) -> bool {
        let last = self.last_up.load(Ordering::Acquire);
        let now = self.made.elapsed().as_millis() as u64;
        last != 0 && now.saturating_sub(last) < PROBE_INTERVAL.as_millis() as u64
    }

    /// Starts the probe unless one runs.
    fn probe(self: &Arc<Self>) {
        if self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = self.clone();
        tokio::spawn(async move {
            loop {
                let connected =
                    tokio::time::timeout(PROBE_TIMEOUT, PgConnection::connect_with(&inner.options))
                        .await;
                let why = match connected {
                    Ok(Ok(conn)) => {
                        let _ = conn.close().await;
                        let now = inner.made.elapsed().as_millis() as u64;
                        inner.last_up.store(now.max(1), Ordering::Release);
                        if inner.down.send_replace(None).is_some() {
                            tracing::info!(database = %inner.name, "the database answers again");
                        }
                        break;
                    }
                    Ok(Err(err)) => err.to_string(),
                    Err(_) => format!("no connection within {PROBE_TIMEOUT:?}"),
                };
                if inner.down.send_replace(Some(why.clone())).is_none() {
                    tracing::warn!(
                        database = %inner.name,
                        error = %why,
                        "the database is unreachable: failing fast until a probe connects"
                    );
                }
                tokio::time::sleep(PROBE_INTERVAL).await;
            }
            inner.probing.store(false, Ordering::Release);
        });
    }
}

/// Whether `err` says the server could not be reached, rather than that a
/// statement failed.
fn is_connection_error(err: &sqlx::Error) -> bool {
    matches!(
        err,
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::Tls(_)
    )
}

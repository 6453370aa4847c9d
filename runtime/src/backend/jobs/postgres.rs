//! The queue in the runtime's PostgreSQL schema. Workers claim in batches
//! with `FOR UPDATE SKIP LOCKED` behind a CTE, complete in batches with
//! `unnest`, and wake on `NOTIFY` (sent by a statement trigger on every
//! insert, so a job enqueued inside a plugin's transaction wakes them when
//! that transaction commits). Plugins enqueue inside their own transactions
//! through `enqueue_job`, a `SECURITY DEFINER` function that takes the
//! plugin from `session_user`: a plugin calling it by hand can only queue
//! jobs of its own.
//!
//! Layer: backend (the job tables); it may call sqlx and the sql backend's
//! error mapping.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool, Postgres};

use super::{COLUMNS, FINISHED, WAITING};
use crate::backend::sql::{Breaker, SqlError, postgres_error as map_error};

/// The queue's pool and names.
#[derive(Debug)]
pub struct Queue {
    pool: PgPool,
    /// The primary's breaker: every operation fails fast while it is down.
    pub(super) breaker: Breaker,
    /// `<namespace>.jobs`.
    jobs: String,
    /// `<namespace>.job_workers`.
    workers: String,
    /// The `NOTIFY` channel.
    channel: String,
}

/// The version of [`ddl`]: bump it with every change, so a node starting
/// on an older schema applies it (and one on the current schema takes no
/// lock on tables other nodes are using).
pub(crate) const SCHEMA: &str = "1";

/// The queue's tables, trigger and enqueue function in schema `ns`; run by
/// the sql backend's startup in its locked transaction when the stored
/// version is not [`SCHEMA`].
pub(crate) fn ddl(ns: &str) -> Vec<String> {
    let mut statements = tables(ns);
    statements.extend(functions(ns));
    statements
}

/// The queue's tables and their indexes, and the plugin role map.
fn tables(ns: &str) -> Vec<String> {
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {ns}.jobs (
                id text PRIMARY KEY,
                plugin text NOT NULL,
                kind text NOT NULL,
                queue text NOT NULL,
                priority bigint NOT NULL,
                state text NOT NULL,
                payload bytea NOT NULL,
                attempt bigint NOT NULL DEFAULT 0,
                max_attempts bigint NOT NULL,
                run_at bigint NOT NULL,
                idempotency_key text,
                unique_key text,
                trace text,
                worker text,
                cancel_requested boolean NOT NULL DEFAULT false,
                errors text NOT NULL DEFAULT '[]',
                result bytea,
                created_at bigint NOT NULL,
                attempted_at bigint,
                lease_until bigint,
                finished_at bigint
            )"
        ),
        format!(
            "CREATE INDEX IF NOT EXISTS jobs_fetch ON {ns}.jobs (queue, priority DESC, run_at, id) \
             WHERE state IN {WAITING}"
        ),
        format!(
            "CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency ON {ns}.jobs (plugin, idempotency_key) \
             WHERE idempotency_key IS NOT NULL AND state NOT IN {FINISHED}"
        ),
        format!(
            "CREATE UNIQUE INDEX IF NOT EXISTS jobs_unique ON {ns}.jobs (plugin, unique_key) \
             WHERE unique_key IS NOT NULL"
        ),
        format!(
            "CREATE INDEX IF NOT EXISTS jobs_running ON {ns}.jobs (worker) WHERE state = 'running'"
        ),
        format!(
            "CREATE INDEX IF NOT EXISTS jobs_finished ON {ns}.jobs (finished_at) \
             WHERE state IN ('completed', 'cancelled')"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ns}.job_workers (id text PRIMARY KEY, heartbeat_at bigint NOT NULL)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ns}.plugin_roles (role text PRIMARY KEY, plugin text NOT NULL)"
        ),
    ]
}

/// The insert trigger that wakes workers, and the enqueue function
/// plugins call inside their transactions.
fn functions(ns: &str) -> Vec<String> {
    vec![
        format!(
            "CREATE OR REPLACE FUNCTION {ns}.notify_jobs() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN PERFORM pg_notify('{ns}_jobs', ''); RETURN NULL; END $$"
        ),
        format!("DROP TRIGGER IF EXISTS jobs_inserted ON {ns}.jobs"),
        format!(
            "CREATE TRIGGER jobs_inserted AFTER INSERT ON {ns}.jobs \
             FOR EACH STATEMENT EXECUTE FUNCTION {ns}.notify_jobs()"
        ),
        format!(
            "CREATE OR REPLACE FUNCTION {ns}.enqueue_job(p_id text, p_kind text, p_queue text, \
               p_priority bigint, p_payload bytea, p_max_attempts bigint, p_run_at bigint, \
               p_key text, p_trace text, p_now bigint) \
             RETURNS text LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
             DECLARE v_plugin text; v_id text;
             BEGIN
               SELECT plugin INTO v_plugin FROM {ns}.plugin_roles WHERE role = session_user;
               IF v_plugin IS NULL THEN
                 RAISE EXCEPTION 'enqueue_job: % is not a plugin role', session_user;
               END IF;
               INSERT INTO {ns}.jobs (id, plugin, kind, queue, priority, state, payload,
                   max_attempts, run_at, idempotency_key, trace, created_at)
                 VALUES (p_id, v_plugin, p_kind, p_queue, p_priority,
                   CASE WHEN p_run_at > p_now THEN 'scheduled' ELSE 'available' END,
                   p_payload, p_max_attempts, p_run_at, p_key, p_trace, p_now)
                 ON CONFLICT DO NOTHING RETURNING id INTO v_id;
               IF v_id IS NULL THEN
                 SELECT id INTO v_id FROM {ns}.jobs WHERE plugin = v_plugin
                   AND idempotency_key = p_key AND state NOT IN {FINISHED};
               END IF;
               RETURN v_id;
             END $$"
        ),
        format!(
            "REVOKE ALL ON FUNCTION {ns}.enqueue_job(text, text, text, bigint, bytea, bigint, \
             bigint, text, text, bigint) FROM PUBLIC"
        ),
    ]
}

/// What a plugin role is granted to enqueue inside its transactions.
pub(crate) fn grant(ns: &str, role: &str) -> String {
    format!(
        "GRANT EXECUTE ON FUNCTION {ns}.enqueue_job(text, text, text, bigint, bytea, bigint, \
         bigint, text, text, bigint) TO \"{role}\""
    )
}

impl Queue {
    pub(super) async fn open(
        options: PgConnectOptions,
        ns: &str,
        connections: u32,
        acquire_timeout: Duration,
        breaker: Breaker,
    ) -> Result<Queue, SqlError> {
        let pool = PgPoolOptions::new()
            .max_connections(connections)
            .acquire_timeout(acquire_timeout)
            .connect_with(options)
            .await
            .map_err(map_error)?;
        Ok(Queue {
            pool,
            breaker,
            jobs: format!("{ns}.jobs"),
            workers: format!("{ns}.job_workers"),
            channel: format!("{ns}_jobs"),
        })
    }

    /// `errors` with the JSON text of parameter `param` appended.
    fn append_error(param: &str) -> String {
        format!("(errors::jsonb || jsonb_build_array({param}::jsonb))::text")
    }

    super::same_on_both!(Postgres);

    /// The claim: `$1` worker, `$2` now, `$3` lease end, `$4` queue,
    /// `$5` limit. Rows other workers are claiming are skipped, not waited
    /// for.
    fn claim_sql(&self) -> String {
        let jobs = &self.jobs;
        format!(
            "WITH next AS (SELECT id FROM {jobs} WHERE state IN {WAITING} AND queue = $4 \
               AND run_at <= $2 ORDER BY priority DESC, run_at, id LIMIT $5 \
               FOR UPDATE SKIP LOCKED) \
             UPDATE {jobs} SET state = 'running', attempt = attempt + 1, worker = $1, \
               attempted_at = $2, lease_until = $3 \
             FROM next WHERE {jobs}.id = next.id RETURNING {}",
            qualified(jobs)
        )
    }

    pub(super) async fn complete(
        &self,
        done: &[(String, i64, Vec<u8>)],
        worker: &str,
        now: i64,
    ) -> Result<(), SqlError> {
        let ids: Vec<&str> = done.iter().map(|(id, _, _)| id.as_str()).collect();
        let attempts: Vec<i64> = done.iter().map(|(_, a, _)| *a).collect();
        let results: Vec<&[u8]> = done.iter().map(|(_, _, r)| r.as_slice()).collect();
        let jobs = &self.jobs;
        let sql = format!(
            "UPDATE {jobs} SET state = 'completed', result = v.result, finished_at = $1, worker = NULL \
             FROM unnest($2::text[], $3::bigint[], $4::bytea[]) AS v(id, attempt, result) \
             WHERE {jobs}.id = v.id AND {jobs}.attempt = v.attempt AND {jobs}.worker = $5 \
               AND {jobs}.state = 'running'"
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(now)
            .bind(&ids)
            .bind(&attempts)
            .bind(&results)
            .bind(worker)
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(())
    }

    /// Wakes `wake` on every notification; reconnects when the listening
    /// connection drops (workers poll meanwhile).
    pub(super) async fn listen(&self, wake: Arc<tokio::sync::Notify>) {
        loop {
            let Err(err) = self.listen_once(&wake).await;
            tracing::warn!(%err, "job notifications lost; polling until they return");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn listen_once(
        &self,
        wake: &tokio::sync::Notify,
    ) -> Result<std::convert::Infallible, sqlx::Error> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(&self.channel).await?;
        loop {
            listener.recv().await?;
            wake.notify_waiters();
        }
    }
}

/// `COLUMNS` qualified by `table`, for `UPDATE … FROM … RETURNING`.
fn qualified(table: &str) -> String {
    COLUMNS
        .split(", ")
        .map(|c| format!("{table}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

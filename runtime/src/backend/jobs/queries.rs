//! The queries both engines run alike: portable SQL over the queue's two
//! tables, written once as a macro that each engine's `Queue` expands
//! inside its `impl` with its `sqlx` database type.
//!
//! Layer: backend (the job tables). It may call sqlx and the sql backend's
//! error mapping; the job workers and the job API above use it.

use super::Filter;

/// The queries both engines run alike (portable SQL over the queue's two
/// tables, `self.jobs` and `self.workers`); each engine's `Queue` invokes it
/// inside its `impl` with its `sqlx` database type, and supplies `open`,
/// `complete`, `claim_sql` and `append_error` itself.
macro_rules! same_on_both {
    ($db:ty) => {
    pub(super) async fn claim(
        &self,
        queue: &str,
        worker: &str,
        limit: u32,
        now: i64,
        lease_until: i64,
    ) -> Result<Vec<super::Job>, SqlError> {
        sqlx::query_as(sqlx::AssertSqlSafe(self.claim_sql()))
            .bind(worker)
            .bind(now)
            .bind(lease_until)
            .bind(queue)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)
    }

    pub(super) async fn insert(&self, jobs: &[super::NewJob]) -> Result<Vec<String>, SqlError> {
        let mut query = sqlx::QueryBuilder::<$db>::new(format!(
            "INSERT INTO {} (id, plugin, kind, queue, priority, state, payload, max_attempts, \
             run_at, idempotency_key, unique_key, trace, created_at) ",
            self.jobs
        ));
        query.push_values(jobs, |mut row, job| {
            row.push_bind(&job.id)
                .push_bind(&job.plugin)
                .push_bind(&job.kind)
                .push_bind(&job.queue)
                .push_bind(job.priority)
                .push_bind(job.state())
                .push_bind(&job.payload)
                .push_bind(job.max_attempts)
                .push_bind(job.run_at)
                .push_bind(&job.idempotency_key)
                .push_bind(&job.unique_key)
                .push_bind(&job.trace)
                .push_bind(job.created_at);
        });
        query.push(" ON CONFLICT DO NOTHING RETURNING id");
        let rows: Vec<(String,)> = query
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    pub(super) async fn holder(&self, plugin: &str, key: &str) -> Result<Option<String>, SqlError> {
        let sql = format!(
            "SELECT id FROM {} WHERE plugin = $1 AND idempotency_key = $2 \
             AND state NOT IN {FINISHED}",
            self.jobs
        );
        let row: Option<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(plugin)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(row.map(|(id,)| id))
    }

    pub(super) async fn finish(
        &self,
        id: &str,
        (attempt, worker): (i64, &str),
        finish: &super::Finish,
        error: Option<&str>,
        now: i64,
    ) -> Result<bool, SqlError> {
        let (state, run_at, result, _, change) = finish.columns();
        let sql = format!(
            "UPDATE {} SET state = $1, run_at = COALESCE($2, run_at), \
             result = COALESCE($3, result), \
             errors = CASE WHEN $4 IS NULL THEN errors ELSE {} END, \
             attempt = attempt + $5, finished_at = $6, worker = NULL \
             WHERE id = $7 AND attempt = $8 AND worker = $9 AND state = 'running'",
            self.jobs,
            Self::append_error("$4")
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(state)
            .bind(run_at)
            .bind(result)
            .bind(error)
            .bind(change)
            .bind(finish.is_final().then_some(now))
            .bind(id)
            .bind(attempt)
            .bind(worker)
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn heartbeat(&self, worker: &str, now: i64) -> Result<Vec<String>, SqlError> {
        let sql = format!(
            "INSERT INTO {} (id, heartbeat_at) VALUES ($1, $2) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
            self.workers
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(worker)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        let sql = format!(
            "SELECT id FROM {} WHERE worker = $1 AND state = 'running' AND cancel_requested",
            self.jobs
        );
        let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(worker)
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    pub(super) async fn retire(&self, worker: &str) -> Result<(), SqlError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {} WHERE id = $1",
            self.workers
        )))
        .bind(worker)
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(())
    }

    pub(super) async fn rescue(
        &self,
        now: i64,
        dead_before: i64,
        error: &str,
    ) -> Result<super::Rescued, SqlError> {
        let sql = format!(
            "UPDATE {jobs} SET \
               state = CASE WHEN attempt >= max_attempts THEN 'discarded' ELSE 'retryable' END, \
               finished_at = CASE WHEN attempt >= max_attempts THEN $1 ELSE NULL END, \
               run_at = $1, worker = NULL, \
               errors = {append} \
             WHERE state = 'running' AND (lease_until < $1 OR worker IS NULL OR worker NOT IN \
               (SELECT id FROM {workers} WHERE heartbeat_at >= $3)) \
             RETURNING state",
            jobs = self.jobs,
            workers = self.workers,
            append = Self::append_error("$2")
        );
        let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(error)
            .bind(dead_before)
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {} WHERE heartbeat_at < $1",
            self.workers
        )))
        .bind(dead_before)
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(super::Rescued {
            retried: rows.len() as u64,
            discarded: rows.iter().filter(|(s,)| s == "discarded").count() as u64,
        })
    }

    pub(super) async fn prune(&self, before: i64) -> Result<u64, SqlError> {
        let sql = format!(
            "DELETE FROM {jobs} WHERE id IN (SELECT id FROM {jobs} \
             WHERE state IN ('completed', 'cancelled') AND finished_at < $1 LIMIT 10000)",
            jobs = self.jobs
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(done.rows_affected())
    }

    pub(super) async fn get(&self, id: &str) -> Result<Option<super::Job>, SqlError> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM {} WHERE id = $1",
            self.jobs
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_error)
    }

    pub(super) async fn list(&self, filter: &super::Filter) -> Result<Vec<super::Job>, SqlError> {
        let mut query = sqlx::QueryBuilder::<$db>::new(format!(
            "SELECT {COLUMNS} FROM {} WHERE 1 = 1",
            self.jobs
        ));
        super::push_filter(&mut query, filter);
        query
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)
    }

    pub(super) async fn cancel(&self, id: &str, now: i64) -> Result<(), SqlError> {
        let sql = format!(
            "UPDATE {} SET state = CASE WHEN state = 'running' THEN state ELSE 'cancelled' END, \
             finished_at = CASE WHEN state = 'running' THEN finished_at ELSE $1 END, \
             cancel_requested = (state = 'running') OR cancel_requested \
             WHERE id = $2 AND (state IN {WAITING} OR state = 'running')",
            self.jobs
        );
        self.update_one(sql, now, id).await
    }

    pub(super) async fn retry(&self, id: &str, now: i64) -> Result<(), SqlError> {
        let sql = format!(
            "UPDATE {} SET state = 'available', attempt = 0, run_at = $1, finished_at = NULL, \
             cancel_requested = false WHERE id = $2 AND state IN ('discarded', 'cancelled')",
            self.jobs
        );
        self.update_one(sql, now, id).await
    }

    /// Runs an update of one job: `$1` now, `$2` its id.
    async fn update_one(&self, sql: String, now: i64, id: &str) -> Result<(), SqlError> {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(())
    }

    pub(super) async fn depth(&self) -> Result<Vec<(String, String, i64)>, SqlError> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT queue, state, count(*) FROM {} GROUP BY queue, state",
            self.jobs
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)
    }

    };
}
pub(crate) use same_on_both;

/// Appends `filter`'s conditions, order and limit to a `SELECT … WHERE 1 = 1`.
pub(super) fn push_filter<DB>(query: &mut sqlx::QueryBuilder<DB>, filter: &Filter)
where
    DB: sqlx::Database,
    for<'a> &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    i64: for<'a> sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    let conditions = [
        ("state", &filter.state),
        ("kind", &filter.kind),
        ("plugin", &filter.plugin),
        ("queue", &filter.queue),
    ];
    for (column, value) in conditions {
        if let Some(value) = value {
            query.push(format!(" AND {column} = "));
            query.push_bind(value.as_str());
        }
    }
    if let Some(after) = &filter.after {
        query.push(" AND id > ");
        query.push_bind(after.as_str());
    }
    query.push(" ORDER BY id LIMIT ");
    query.push_bind(i64::from(filter.limit));
}

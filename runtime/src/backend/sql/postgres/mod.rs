//! PostgreSQL: a schema and a login role per plugin, made by the runtime
//! over an admin connection. Each plugin's pool logs in as its own role
//! with `search_path` set to its schema, so `SET ROLE`, `RESET ROLE` and
//! schema-qualified names reach nothing else: other schemas and the
//! runtime's `trellis` schema grant the role nothing. The role's password is
//! derived from a secret kept in the `trellis` schema, so every node derives
//! the same one.
//!
//! Layer: `backend` (part of `backend::sql`); it may call sqlx, `config`
//! and the DDL of the stores kept in the runtime's schema
//! (`backend::jobs`, `backend::runtime_store`), nothing above `backend`.
//! The runtime's own schema is made in `schema`.

mod schema;

use std::str::FromStr;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{
    PgArgumentBuffer, PgArguments, PgConnectOptions, PgPoolOptions, PgRow, PgTypeInfo,
};
use sqlx::{
    AssertSqlSafe, Column, Encode, PgConnection, PgPool, Postgres, Row, Type, TypeInfo, ValueRef,
};

use self::schema::{create_runtime_schema, lock, role_secret, run, update_queue_schema};
use super::breaker::Breaker;
use super::pool::{Dialect, Limits, Pooled, collect_rows, timed};
use super::replica::{ReplicaStats, Replicas, parse_lsn};
use super::{Migration, Rows, SqlError, Value, ident};
use crate::config::{PostgresConfig, SqlPoolConfig};

/// Runs the admin side: runtime schema, roles, schemas.
#[derive(Debug)]
pub struct Service {
    admin: PgPool,
    options: PgConnectOptions,
    pool: SqlPoolConfig,
    secret: String,
    /// The runtime's schema; prefix of plugin roles and schemas.
    namespace: String,
    /// Read replicas and their sampled lag.
    replicas: Arc<Replicas>,
    /// Fails work on the primary fast while it is down.
    breaker: Breaker,
}

/// A plugin's pool, logged in as its role.
#[derive(Debug, Clone)]
pub struct Db {
    pub(super) pooled: Pooled<Postgres>,
    role: String,
    admin: PgPool,
    namespace: String,
    replicas: Arc<Replicas>,
    /// One pool per replica, logged in as the plugin's role (lazy).
    replica_pools: Vec<PgPool>,
}

impl Service {
    pub(super) async fn start(
        config: &PostgresConfig,
        pool: &SqlPoolConfig,
    ) -> Result<Service, SqlError> {
        let options = PgConnectOptions::from_str(&config.url)
            .map_err(|e| SqlError::Invalid(format!("sql.postgres.url: {e}")))?;
        let admin = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(pool.acquire_timeout)
            .connect_with(options.clone())
            .await
            .map_err(map_error)?;
        let ns = &config.namespace;
        let mut tx = admin.begin().await.map_err(map_error)?;
        lock(&mut tx).await?;
        create_runtime_schema(&mut tx, ns).await?;
        update_queue_schema(&mut tx, ns).await?;
        let secret = role_secret(&mut tx, ns).await?;
        tx.commit().await.map_err(map_error)?;
        let replicas = Replicas::start(config, admin.clone()).map_err(SqlError::Invalid)?;
        let name = format!("PostgreSQL {}:{}", options.get_host(), options.get_port());
        Ok(Service {
            breaker: Breaker::new(name, options.clone()),
            admin,
            options,
            pool: pool.clone(),
            secret,
            namespace: ns.clone(),
            replicas,
        })
    }

    /// Where replica-ok reads ran and how far each replica is behind.
    pub(super) fn replica_stats(&self) -> ReplicaStats {
        self.replicas.stats()
    }

    /// Tries to take the cluster-wide lock of `role` in this namespace on a
    /// connection of its own: held while the connection lives.
    pub(super) async fn try_lead(&self, role: &str) -> Result<Option<PgConnection>, SqlError> {
        use sqlx::Connection as _;
        let mut conn = PgConnection::connect_with(&self.options)
            .await
            .map_err(map_error)?;
        let key = format!("{}:{role}", self.namespace);
        let (got,): (bool,) =
            sqlx::query_as("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
                .bind(key)
                .fetch_one(&mut conn)
                .await
                .map_err(map_error)?;
        Ok(got.then_some(conn))
    }

    /// The plugin version store in the runtime's schema.
    pub(super) fn runtime_store(&self) -> crate::backend::runtime_store::RuntimeStore {
        crate::backend::runtime_store::RuntimeStore::postgres(
            self.options.clone(),
            &self.namespace,
            self.pool.acquire_timeout,
        )
    }

    /// The job queue in the runtime's schema, on a pool of its own.
    pub(super) async fn job_store(
        &self,
        connections: u32,
    ) -> Result<crate::backend::jobs::JobStore, SqlError> {
        crate::backend::jobs::JobStore::postgres(
            self.options.clone(),
            &self.namespace,
            connections,
            self.pool.acquire_timeout,
            self.breaker.clone(),
        )
        .await
    }

    /// Round trip to the primary over the admin pool.
    pub(super) async fn ping(&self) -> Result<(), SqlError> {
        self.breaker
            .guard(sqlx::query("SELECT 1").execute(&self.admin))
            .await?
            .map(drop)
            .map_err(map_error)
    }

    pub(super) async fn provision(&self, plugin: &str) -> Result<Db, SqlError> {
        let ns = &self.namespace;
        let role = format!("{ns}_{}", ident(plugin));
        let schema = role.clone();
        let password = format!("{:x}", Sha256::digest(format!("{}:{role}", self.secret)));
        self.create_role(plugin, &role, &schema, &password).await?;
        let (pool, replica_pools) = self.plugin_pools(&role, &schema, &password).await?;
        Ok(Db {
            pooled: Pooled {
                pool,
                breaker: self.breaker.clone(),
                limits: Limits {
                    max_rows: self.pool.max_rows,
                    statement_timeout: self.pool.statement_timeout,
                },
            },
            role,
            admin: self.admin.clone(),
            namespace: ns.clone(),
            replicas: self.replicas.clone(),
            replica_pools,
        })
    }

    /// Creates (or brings up to date) `plugin`'s login role and its schema,
    /// with the grants it needs in the runtime's schema, and records whose
    /// role it is.
    async fn create_role(
        &self,
        plugin: &str,
        role: &str,
        schema: &str,
        password: &str,
    ) -> Result<(), SqlError> {
        let ns = &self.namespace;
        let mut tx = self.admin.begin().await.map_err(map_error)?;
        lock(&mut tx).await?;
        let (exists,): (bool,) =
            sqlx::query_as("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
                .bind(role)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_error)?;
        let verb = if exists { "ALTER" } else { "CREATE" };
        let statements = [
            format!(
                "{verb} ROLE \"{role}\" LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE \
                 NOREPLICATION NOBYPASSRLS PASSWORD '{password}'"
            ),
            format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\" AUTHORIZATION \"{role}\""),
            format!("REVOKE ALL ON SCHEMA \"{schema}\" FROM PUBLIC"),
            format!("GRANT USAGE ON SCHEMA {ns} TO \"{role}\""),
            format!("GRANT EXECUTE ON FUNCTION {ns}.record_migration(integer, text) TO \"{role}\""),
            format!("ALTER ROLE \"{role}\" SET search_path = \"{schema}\""),
            crate::backend::jobs::postgres_grant(ns, role),
        ];
        let deploy = crate::backend::runtime_store::ddl(&format!("{ns}."), "bytea");
        for statement in statements.iter().chain(&deploy) {
            run(&mut tx, statement).await?;
        }
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {ns}.plugin_roles (role, plugin) VALUES ($1, $2) \
             ON CONFLICT (role) DO UPDATE SET plugin = excluded.plugin"
        )))
        .bind(role)
        .bind(plugin)
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        tx.commit().await.map_err(map_error)?;
        Ok(())
    }

    /// The plugin's pool on the primary, logged in as its `role` with
    /// `search_path` its `schema`, and one lazy pool per replica.
    async fn plugin_pools(
        &self,
        role: &str,
        schema: &str,
        password: &str,
    ) -> Result<(PgPool, Vec<PgPool>), SqlError> {
        let timeout_ms = self.pool.statement_timeout.as_millis().to_string();
        let as_plugin = |options: &PgConnectOptions| {
            options.clone().username(role).password(password).options([
                ("search_path", schema),
                ("statement_timeout", timeout_ms.as_str()),
            ])
        };
        let pool_options = || {
            PgPoolOptions::new()
                .min_connections(self.pool.min_connections)
                .max_connections(self.pool.max_connections)
                .acquire_timeout(self.pool.acquire_timeout)
                .idle_timeout(self.pool.idle_timeout)
        };
        let pool = pool_options()
            .connect_with(as_plugin(&self.options))
            .await
            .map_err(map_error)?;
        // Replicas may be down now; their pools connect when first used.
        let replica_pools = self
            .replicas
            .options
            .iter()
            .map(|options| {
                pool_options()
                    .min_connections(0)
                    .connect_lazy_with(as_plugin(options))
            })
            .collect();
        Ok((pool, replica_pools))
    }
}

impl Db {
    /// See [`super::PluginDb::causal`].
    pub(super) fn causal(&self) -> Option<(&str, std::time::Duration)> {
        self.replicas.causal()
    }

    /// The runtime's schema.
    pub(super) fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A `replica-ok` read: on a replica when one is usable (and, given
    /// `min_lsn`, has replayed that far), otherwise on the primary.
    pub(super) async fn read(
        &self,
        sql: &str,
        params: Vec<Value>,
        min_lsn: Option<u64>,
    ) -> Result<Rows, SqlError> {
        if !self.replicas.is_empty() {
            let pools = &self.replica_pools;
            match self
                .replicas
                .choose(min_lsn, |i| replay_lsn(&pools[i]))
                .await
            {
                Ok(i) => match pools[i].acquire().await {
                    Ok(mut conn) => {
                        let limits = self.pooled.limits;
                        let on_replica =
                            Postgres::query_on(&mut conn, sql, params.clone(), limits.max_rows);
                        match timed(limits, on_replica).await {
                            Err(SqlError::Unavailable(_)) => self.replicas.failed(i),
                            done => {
                                tracing::debug!(replica = %self.replicas.states[i].name, "read on a replica");
                                self.replicas.count(Ok(()));
                                return done;
                            }
                        }
                    }
                    Err(_) => self.replicas.failed(i),
                },
                Err(reason) => {
                    tracing::debug!(?reason, "replica-ok read on the primary");
                    self.replicas.count(Err(reason));
                }
            }
        }
        self.pooled.query(sql, params).await
    }

    /// The primary's WAL position now, when replicas are configured: the
    /// consistency token after a write.
    pub(super) async fn write_position(&self) -> Option<u64> {
        if self.replicas.is_empty() {
            return None;
        }
        let (lsn,): (String,) = sqlx::query_as("SELECT pg_current_wal_lsn()::text")
            .fetch_one(&self.pooled.pool)
            .await
            .ok()?;
        parse_lsn(&lsn)
    }

    /// Each migration runs as the plugin's role, in one transaction with its
    /// record (written through `trellis.record_migration`).
    pub(super) async fn migrate(&self, migrations: &[Migration]) -> Result<Vec<u32>, SqlError> {
        let ns = &self.namespace;
        let applied: Vec<(i32,)> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT id FROM {ns}.migrations WHERE role = $1"
        )))
        .bind(&self.role)
        .fetch_all(&self.admin)
        .await
        .map_err(map_error)?;
        let applied: Vec<u32> = applied.into_iter().map(|(id,)| id as u32).collect();
        let record = format!("SELECT {ns}.record_migration($1::integer, $2)");
        self.pooled.apply(migrations, &applied, &record).await
    }
}

/// A replica's replay position, asked now.
async fn replay_lsn(pool: &PgPool) -> Option<u64> {
    let (lsn,): (Option<String>,) = sqlx::query_as("SELECT pg_last_wal_replay_lsn()::text")
        .fetch_one(pool)
        .await
        .ok()?;
    parse_lsn(&lsn?)
}
impl Dialect for Postgres {
    async fn query_on(
        conn: &mut PgConnection,
        sql: &str,
        params: Vec<Value>,
        max_rows: usize,
    ) -> Result<Rows, SqlError> {
        let stream = bind(sqlx::query(AssertSqlSafe(sql)), params).fetch(conn);
        collect_rows(stream, max_rows, decode, map_error).await
    }

    async fn execute_on(
        conn: &mut PgConnection,
        sql: &str,
        params: Vec<Value>,
    ) -> Result<u64, SqlError> {
        let done = bind(sqlx::query(AssertSqlSafe(sql)), params)
            .execute(conn)
            .await
            .map_err(map_error)?;
        Ok(done.rows_affected())
    }

    /// A plugin's migration runs on its own role's connection: isolation
    /// holds for scripts as for statements.
    async fn run_script(conn: &mut PgConnection, sql: &str) -> Result<(), SqlError> {
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(conn)
            .await
            .map_err(map_error)?;
        Ok(())
    }

    async fn execute_trusted(
        conn: &mut PgConnection,
        sql: &str,
        params: Vec<Value>,
    ) -> Result<u64, SqlError> {
        Self::execute_on(conn, sql, params).await
    }

    fn map_error(err: sqlx::Error) -> SqlError {
        map_error(err)
    }
}

type Query<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

fn bind(mut query: Query<'_>, params: Vec<Value>) -> Query<'_> {
    for value in params {
        query = match value {
            Value::Null => query.bind(UntypedNull),
            Value::Integer(i) => query.bind(i),
            Value::Real(x) => query.bind(x),
            Value::Text(s) => query.bind(s),
            Value::Blob(b) => query.bind(b),
            Value::Boolean(b) => query.bind(b),
            Value::Json(s) => match serde_json::from_str::<serde_json::Value>(&s) {
                Ok(json) => query.bind(json),
                Err(_) => query.bind(s),
            },
            Value::Timestamp(micros) => query.bind(chrono::DateTime::from_timestamp_micros(micros)),
        };
    }
    query
}

/// A NULL whose type PostgreSQL infers from context (parameter type 0), so
/// it fits a column of any type.
struct UntypedNull;

impl Type<Postgres> for UntypedNull {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(sqlx::postgres::types::Oid(0))
    }
}

impl Encode<'_, Postgres> for UntypedNull {
    fn encode_by_ref(&self, _buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        Ok(IsNull::Yes)
    }
}

fn decode(row: &PgRow) -> Result<Vec<Value>, SqlError> {
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let raw = row.try_get_raw(i).map_err(map_error)?;
        if raw.is_null() {
            values.push(Value::Null);
            continue;
        }
        let type_name = column.type_info().name().to_string();
        let value = match type_name.as_str() {
            "BOOL" => Value::Boolean(get(row, i)?),
            "INT2" => Value::Integer(i64::from(get::<i16>(row, i)?)),
            "INT4" => Value::Integer(i64::from(get::<i32>(row, i)?)),
            "INT8" => Value::Integer(get(row, i)?),
            "FLOAT4" => Value::Real(f64::from(get::<f32>(row, i)?)),
            "FLOAT8" => Value::Real(get(row, i)?),
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" | "CITEXT" => Value::Text(get(row, i)?),
            "BYTEA" => Value::Blob(get(row, i)?),
            "JSON" | "JSONB" => Value::Json(get::<serde_json::Value>(row, i)?.to_string()),
            "TIMESTAMPTZ" => {
                Value::Timestamp(get::<chrono::DateTime<chrono::Utc>>(row, i)?.timestamp_micros())
            }
            "TIMESTAMP" => Value::Timestamp(
                get::<chrono::NaiveDateTime>(row, i)?
                    .and_utc()
                    .timestamp_micros(),
            ),
            "UUID" => Value::Text(get::<uuid::Uuid>(row, i)?.to_string()),
            other => {
                return Err(SqlError::Invalid(format!(
                    "column `{}` has type {other}, which the sql capability does not carry; \
                     cast it in SQL (e.g. `::text`)",
                    column.name()
                )));
            }
        };
        values.push(value);
    }
    Ok(values)
}

fn get<'r, T>(row: &'r PgRow, i: usize) -> Result<T, SqlError>
where
    T: sqlx::Decode<'r, Postgres> + Type<Postgres>,
{
    row.try_get(i).map_err(map_error)
}

/// sqlx's error as the guest's error, by SQLSTATE class.
pub(crate) fn map_error(err: sqlx::Error) -> SqlError {
    match err {
        sqlx::Error::Database(db) => {
            let message = db.message().to_string();
            let code = db.code().map(|c| c.to_string()).unwrap_or_default();
            match code.as_str() {
                c if c.starts_with("23") => SqlError::Constraint(message),
                "42601" => SqlError::Syntax(message),
                "42501" => SqlError::PermissionDenied(message),
                "57014" => SqlError::Timeout(message),
                c if c.starts_with("08") || c.starts_with("53") || c.starts_with("57P") => {
                    SqlError::Unavailable(message)
                }
                _ => SqlError::Invalid(message),
            }
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => SqlError::Unavailable(err.to_string()),
        other => SqlError::Invalid(other.to_string()),
    }
}

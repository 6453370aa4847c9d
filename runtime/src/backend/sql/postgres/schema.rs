//! The runtime's own schema on PostgreSQL, made by the admin connection
//! at start under the provisioning lock: the migration record and its
//! function, the secrets (the role password's), the plugin version store,
//! and the job queue's tables when their version changed. Also the lock
//! and the statement runner the provisioning of plugin roles shares.
//!
//! Layer: `backend` (part of `backend::sql::postgres`); it may call sqlx
//! and the DDL of the stores kept in that schema (`backend::jobs`,
//! `backend::runtime_store`), nothing above `backend`.

use sqlx::{AssertSqlSafe, Postgres};

use super::map_error;
use crate::backend::sql::SqlError;

/// Serialises provisioning across nodes (`pg_advisory_xact_lock` key).
const PROVISION_LOCK: i64 = 0x7472_656c_6c69;

/// The runtime's schema and what every plugin role shares in it: the
/// migration record and its function, the secrets, the plugin version
/// store.
pub(super) async fn create_runtime_schema(
    tx: &mut sqlx::Transaction<'static, Postgres>,
    ns: &str,
) -> Result<(), SqlError> {
    let statements = [
        format!("CREATE SCHEMA IF NOT EXISTS {ns}"),
        format!("REVOKE ALL ON SCHEMA {ns} FROM PUBLIC"),
        format!(
            "CREATE TABLE IF NOT EXISTS {ns}.migrations (role text NOT NULL, id integer NOT NULL, \
             name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (role, id))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ns}.secrets (name text PRIMARY KEY, value text NOT NULL)"
        ),
        // Lets a plugin record its own migration inside its migration
        // transaction, and nothing else: the role is the caller's.
        format!(
            "CREATE OR REPLACE FUNCTION {ns}.record_migration(p_id integer, p_name text) \
             RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS \
             $$ INSERT INTO {ns}.migrations (role, id, name) VALUES (session_user, p_id, p_name) $$"
        ),
        format!("REVOKE ALL ON FUNCTION {ns}.record_migration(integer, text) FROM PUBLIC"),
    ];
    let deploy = crate::backend::runtime_store::ddl(&format!("{ns}."), "bytea");
    for statement in statements.iter().chain(&deploy) {
        run(tx, statement).await?;
    }
    Ok(())
}

/// The job queue's tables, trigger and function, recreated when their
/// recorded version is not this runtime's.
pub(super) async fn update_queue_schema(
    tx: &mut sqlx::Transaction<'static, Postgres>,
    ns: &str,
) -> Result<(), SqlError> {
    // The queue's tables, trigger and function only when missing or
    // older: their DDL locks the queue's tables, and on a running
    // cluster other nodes are using them.
    let (queue_schema,): (Option<String>,) = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT (SELECT value FROM {ns}.secrets WHERE name = 'queue-schema')"
    )))
    .fetch_one(&mut **tx)
    .await
    .map_err(map_error)?;
    let version = crate::backend::jobs::POSTGRES_SCHEMA;
    if queue_schema.as_deref() != Some(version) {
        for statement in crate::backend::jobs::postgres_ddl(ns) {
            run(tx, &statement).await?;
        }
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {ns}.secrets (name, value) VALUES ('queue-schema', $1) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value"
        )))
        .bind(version)
        .execute(&mut **tx)
        .await
        .map_err(map_error)?;
    }
    Ok(())
}

/// The secret plugin role passwords are derived from: made by the first
/// node, read by every other.
pub(super) async fn role_secret(
    tx: &mut sqlx::Transaction<'static, Postgres>,
    ns: &str,
) -> Result<String, SqlError> {
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {ns}.secrets (name, value) VALUES ('role-password', $1) ON CONFLICT DO NOTHING"
    )))
    .bind(format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    ))
    .execute(&mut **tx)
    .await
    .map_err(map_error)?;
    let (secret,): (String,) = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT value FROM {ns}.secrets WHERE name = 'role-password'"
    )))
    .fetch_one(&mut **tx)
    .await
    .map_err(map_error)?;
    Ok(secret)
}

/// Takes the provisioning lock for the rest of the admin transaction.
pub(super) async fn lock(tx: &mut sqlx::Transaction<'static, Postgres>) -> Result<(), SqlError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(PROVISION_LOCK)
        .execute(&mut **tx)
        .await
        .map_err(map_error)?;
    Ok(())
}

/// Runs one admin statement built from validated identifiers.
pub(super) async fn run(
    tx: &mut sqlx::Transaction<'static, Postgres>,
    statement: &str,
) -> Result<(), SqlError> {
    sqlx::query(AssertSqlSafe(statement))
        .execute(&mut **tx)
        .await
        .map_err(map_error)?;
    Ok(())
}

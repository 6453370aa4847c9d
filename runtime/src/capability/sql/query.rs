//! The `sql` interface's host calls: `query` (routed by consistency to the
//! primary or a replica), `query-cached` (through the query cache),
//! `execute`, and `begin`. A write on the primary is recorded: the query
//! cache forgets its tables and the request's consistency position moves
//! past it. Inside an atomic batch every call goes to `batch` instead.
//!
//! Layer: `capability` (part of `capability::sql`); it may call
//! `backend::sql` (the database, the query cache) and `monitor` through the
//! statement watch, nothing above.

use std::time::Instant;

use tracing::Instrument;
use wasmtime::component::Resource;

use super::convert::{from_wit, to_wit_error, to_wit_rows};
use super::{SqlTransaction, may_write};
use crate::backend::sql::{self as backend, PluginDb, SqlError};
use crate::capability::HostState;
use crate::capability::bindings::sql::{Consistency, Error, Host, Rows, Value};

impl HostState {
    /// After a successful write: cached results over the tables it names
    /// are stale; later reads of this request, and the client's next
    /// requests (through the response header), must see it.
    pub(super) async fn wrote(&mut self, db: &PluginDb, statements: &[String]) {
        self.plugin.forget_cached(statements).await;
        if let Some(lsn) = db.write_position().await {
            self.instance.sql.seen.min_lsn =
                Some(self.instance.sql.seen.min_lsn.map_or(lsn, |m| m.max(lsn)));
            self.instance.sql.seen.wrote = true;
        }
    }

    /// The one query path: routed by consistency, watched, and a write on
    /// the primary recorded.
    async fn run_query(
        &mut self,
        db: &PluginDb,
        statement: String,
        params: Vec<backend::Value>,
        consistency: Consistency,
    ) -> Result<backend::Rows, SqlError> {
        let watch = self.watch("query", &statement);
        let result = match consistency {
            Consistency::ReplicaOk => {
                db.read(&statement, params.clone(), self.instance.sql.seen.min_lsn)
                    .instrument(watch.span.clone())
                    .await
            }
            Consistency::Primary => {
                db.query(&statement, params.clone())
                    .instrument(watch.span.clone())
                    .await
            }
        };
        if result.is_ok() && consistency == Consistency::Primary && may_write(&statement) {
            self.wrote(db, std::slice::from_ref(&statement)).await;
        }
        self.record(watch, result.as_ref().err(), statement, params);
        result
    }
}

impl Host for HostState {
    async fn query(
        &mut self,
        statement: String,
        params: Vec<Value>,
        consistency: Consistency,
    ) -> wasmtime::Result<Result<Rows, Error>> {
        let db = match self.db() {
            Ok(db) => db.clone(),
            Err(err) => return Ok(Err(err)),
        };
        if self.instance.sql.ambient.is_some() {
            return self.query_in_batch(statement, params).await;
        }
        let result = self
            .run_query(&db, statement, from_wit(params), consistency)
            .await;
        Ok(result.map(to_wit_rows).map_err(to_wit_error))
    }

    async fn query_cached(
        &mut self,
        statement: String,
        params: Vec<Value>,
        consistency: Consistency,
        ttl_ms: u32,
    ) -> wasmtime::Result<Result<Rows, Error>> {
        let db = match self.db() {
            Ok(db) => db.clone(),
            Err(err) => return Ok(Err(err)),
        };
        if self.instance.sql.ambient.is_some() {
            return self.query_in_batch(statement, params).await;
        }
        let params = from_wit(params);
        let cache = self.plugin.capabilities.sql.query_cache.clone();
        let plugin = self.plugin.name.clone();
        let Some(read_set) = cache.read_set(&plugin, &statement).await else {
            let result = self.run_query(&db, statement, params, consistency).await;
            return Ok(result.map(to_wit_rows).map_err(to_wit_error));
        };
        let started = Instant::now();
        if let Some(rows) = cache.get(&plugin, &statement, &params).await {
            self.plugin.stats.sql("cached", started.elapsed(), None);
            return Ok(Ok(to_wit_rows(rows)));
        }
        let result = self
            .run_query(&db, statement.clone(), params.clone(), consistency)
            .await;
        if let Ok(rows) = &result {
            let ttl = std::time::Duration::from_millis(u64::from(ttl_ms));
            cache
                .put(&plugin, &statement, &params, rows, ttl, read_set)
                .await;
        }
        Ok(result.map(to_wit_rows).map_err(to_wit_error))
    }

    async fn execute(
        &mut self,
        statement: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<u64, Error>> {
        let db = match self.db() {
            Ok(db) => db.clone(),
            Err(err) => return Ok(Err(err)),
        };
        if self.instance.sql.ambient.is_some() {
            return self.execute_in_batch(statement, params).await;
        }
        let params = from_wit(params);
        let watch = self.watch("execute", &statement);
        let result = db
            .execute(&statement, params.clone())
            .instrument(watch.span.clone())
            .await;
        if result.is_ok() {
            self.wrote(&db, std::slice::from_ref(&statement)).await;
        }
        self.record(watch, result.as_ref().err(), statement, params);
        Ok(result.map_err(to_wit_error))
    }

    async fn begin(&mut self) -> wasmtime::Result<Result<Resource<SqlTransaction>, Error>> {
        let db = match self.db() {
            Ok(db) => db.clone(),
            Err(err) => return Ok(Err(err)),
        };
        if let Some(ambient) = self.instance.sql.ambient.as_mut() {
            // Nested in the batch's transaction: a savepoint.
            return Ok(match ambient.open_savepoint().await {
                Ok(name) => Ok(self.table.push(SqlTransaction::savepoint(name))?),
                Err(err) => Err(to_wit_error(err)),
            });
        }
        match db.begin().await {
            Ok(tx) => Ok(Ok(self.table.push(SqlTransaction::own(tx))?)),
            Err(err) => Ok(Err(to_wit_error(err))),
        }
    }
}

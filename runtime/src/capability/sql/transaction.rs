//! The guest's `transaction` resource of `trellis:plugin/sql`: a database
//! transaction of its own, or inside an atomic batch a savepoint of the
//! batch's. Statements in it are watched like any other; its writes make
//! the query cache forget their tables now and again at commit, and a
//! commit forwards the jobs it enqueued (SQLite's outbox).
//!
//! Layer: `capability` (part of `capability::sql`); it may call
//! `backend::sql`, `monitor` through the statement watch, and the `jobs`
//! capability (the outbox), nothing above.

use tracing::Instrument;
use wasmtime::component::Resource;

use super::convert::{from_wit, to_wit_error, to_wit_rows};
use super::{Ambient, may_write};
use crate::backend::sql as backend;
use crate::capability::HostState;
use crate::capability::bindings::sql::{Error, HostTransaction, Rows, Value};

/// The host side of a guest's `transaction` resource. `None` once committed;
/// dropping it rolls back.
#[derive(Debug)]
pub struct SqlTransaction {
    pub(crate) tx: Option<backend::Transaction>,
    /// Inside an atomic batch, a guest transaction is a savepoint of the
    /// batch's: its name until released or rolled back to.
    savepoint: Option<String>,
    /// Write statements run in it: the query cache forgets their tables
    /// again at commit, as other readers may have cached the old rows.
    written: Vec<String>,
    /// Jobs were enqueued in it: on SQLite they wait in the outbox until
    /// the commit, then move to the queue.
    pub(crate) enqueued: bool,
}

impl SqlTransaction {
    /// A transaction of its own, on the plugin's database.
    pub(super) fn own(tx: backend::Transaction) -> SqlTransaction {
        SqlTransaction {
            tx: Some(tx),
            savepoint: None,
            written: Vec::new(),
            enqueued: false,
        }
    }

    /// Savepoint `name` of the atomic batch's transaction.
    pub(super) fn savepoint(name: String) -> SqlTransaction {
        SqlTransaction {
            tx: None,
            savepoint: Some(name),
            written: Vec::new(),
            enqueued: false,
        }
    }
}

/// The transaction `this` runs on: its own, or (a savepoint) the atomic
/// batch's. `None` once finished.
pub(crate) fn tx_of<'a>(
    table: &'a mut wasmtime::component::ResourceTable,
    ambient: &'a mut Option<Ambient>,
    this: &Resource<SqlTransaction>,
) -> wasmtime::Result<Option<&'a mut backend::Transaction>> {
    let transaction = table.get_mut(this)?;
    Ok(match (transaction.tx.as_mut(), &transaction.savepoint) {
        (Some(tx), _) => Some(tx),
        (None, Some(_)) => ambient.as_mut().and_then(|a| a.tx.as_mut()),
        (None, None) => None,
    })
}

impl HostState {
    /// A write inside a transaction: cached results over its tables are
    /// dropped now (this request may read them) and again at commit.
    async fn written_in(
        &mut self,
        this: &Resource<SqlTransaction>,
        statement: &str,
    ) -> wasmtime::Result<()> {
        let statement = statement.to_string();
        self.plugin
            .forget_cached(std::slice::from_ref(&statement))
            .await;
        self.table.get_mut(this)?.written.push(statement);
        Ok(())
    }
}

impl HostTransaction for HostState {
    async fn query(
        &mut self,
        this: Resource<SqlTransaction>,
        statement: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<Rows, Error>> {
        let params = from_wit(params);
        let watch = self.watch("query", &statement);
        let Some(tx) = tx_of(&mut self.table, &mut self.instance.sql.ambient, &this)? else {
            return Ok(Err(Error::TransactionClosed));
        };
        let result = tx
            .query(&statement, params.clone())
            .instrument(watch.span.clone())
            .await;
        if result.is_ok() && may_write(&statement) {
            self.written_in(&this, &statement).await?;
        }
        self.record(watch, result.as_ref().err(), statement, params);
        Ok(result.map(to_wit_rows).map_err(to_wit_error))
    }

    async fn execute(
        &mut self,
        this: Resource<SqlTransaction>,
        statement: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<u64, Error>> {
        let params = from_wit(params);
        let watch = self.watch("execute", &statement);
        let Some(tx) = tx_of(&mut self.table, &mut self.instance.sql.ambient, &this)? else {
            return Ok(Err(Error::TransactionClosed));
        };
        let result = tx
            .execute(&statement, params.clone())
            .instrument(watch.span.clone())
            .await;
        if result.is_ok() {
            self.written_in(&this, &statement).await?;
        }
        self.record(watch, result.as_ref().err(), statement, params);
        Ok(result.map_err(to_wit_error))
    }

    async fn commit(
        &mut self,
        this: Resource<SqlTransaction>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let transaction = self.table.get_mut(&this)?;
        if let Some(name) = transaction.savepoint.take() {
            // A savepoint of the atomic batch: released; its writes commit
            // (or not) with the batch.
            let written = std::mem::take(&mut transaction.written);
            let Some(ambient) = self.instance.sql.ambient.as_mut() else {
                return Ok(Err(Error::TransactionClosed));
            };
            let released = ambient.release_savepoint(&name, written).await;
            return Ok(released.map_err(to_wit_error));
        }
        let Some(tx) = transaction.tx.take() else {
            return Ok(Err(Error::TransactionClosed));
        };
        let written = std::mem::take(&mut transaction.written);
        let enqueued = transaction.enqueued;
        let result = tx.commit().await.map_err(to_wit_error);
        if result.is_ok() && enqueued {
            crate::capability::jobs::forward_outbox(self.plugin.clone()).await;
        }
        if result.is_ok()
            && !written.is_empty()
            && let Ok(db) = self.db()
        {
            let db = db.clone();
            self.wrote(&db, &written).await;
        }
        Ok(result)
    }

    async fn drop(&mut self, this: Resource<SqlTransaction>) -> wasmtime::Result<()> {
        // Dropping an uncommitted sqlx transaction rolls it back; an
        // unreleased savepoint is rolled back to.
        let transaction = self.table.delete(this)?;
        if let Some(name) = transaction.savepoint {
            self.roll_back_savepoint(&name).await;
        }
        Ok(())
    }
}

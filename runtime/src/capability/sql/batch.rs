//! The atomic batch's side of the `sql` capability: the ambient
//! transaction (`http::api::batch` opens it; every statement of a guest call
//! inside the batch runs in it, skipping replicas and the query cache), and
//! the savepoints a guest's own transactions become inside it.
//!
//! Layer: `capability` (part of `capability::sql`); it may call
//! `backend::sql` (the transaction) and `monitor` through the statement
//! watch, nothing above.

use tracing::Instrument;

use super::convert::{from_wit, to_wit_error, to_wit_rows};
use super::may_write;
use crate::backend::sql::{self as backend, SqlError};
use crate::capability::HostState;
use crate::capability::bindings::sql::{Error, Rows, Value};

/// The transaction of an atomic batch (`http::api::batch`): one database
/// transaction its operations run in, one after another. Each guest call
/// takes it for its duration (the `sql` instance state) and hands it back
/// when it answers; a call that traps or runs out of time drops it, which
/// rolls it back.
#[derive(Debug, Default)]
pub struct Ambient {
    /// The transaction (`None`: gone, rolled back).
    pub tx: Option<backend::Transaction>,
    /// Write statements run in it: the query cache forgets their tables
    /// once it commits.
    pub written: Vec<String>,
    /// Jobs were enqueued in it (SQLite's outbox is forwarded after the
    /// commit).
    pub enqueued: bool,
    /// Savepoints opened so far (their names are numbered).
    savepoints: u32,
}

impl Ambient {
    /// The ambient transaction of a batch that begins with `tx`.
    pub fn new(tx: backend::Transaction) -> Ambient {
        Ambient {
            tx: Some(tx),
            ..Ambient::default()
        }
    }

    /// Opens the next savepoint in the batch's transaction (a guest's
    /// `begin` nested in it); returns its name.
    pub(super) async fn open_savepoint(&mut self) -> Result<String, SqlError> {
        self.savepoints += 1;
        let name = format!("trellis_sp{}", self.savepoints);
        let opened = match self.tx.as_mut() {
            Some(tx) => tx.execute(&format!("SAVEPOINT {name}"), Vec::new()).await,
            None => Err(SqlError::TransactionClosed),
        };
        opened.map(|_| name)
    }

    /// Releases savepoint `name` (a guest's commit): the statements
    /// `written` in it join the batch's, and commit (or not) with it.
    pub(super) async fn release_savepoint(
        &mut self,
        name: &str,
        written: Vec<String>,
    ) -> Result<(), SqlError> {
        self.written.extend(written);
        let Some(tx) = self.tx.as_mut() else {
            return Err(SqlError::TransactionClosed);
        };
        tx.execute(&format!("RELEASE SAVEPOINT {name}"), Vec::new())
            .await
            .map(|_| ())
    }
}

/// Where an atomic batch keeps its [`Ambient`] between operations; travels
/// to the plugin call as a request extension.
pub type AmbientSlot = std::sync::Arc<std::sync::Mutex<Ambient>>;

/// A statement of a guest call inside an atomic batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InBatch {
    Query,
    Execute,
}

/// What such a statement returned.
enum Done {
    Rows(backend::Rows),
    Affected(u64),
}

impl HostState {
    /// Runs a statement on the atomic batch's transaction: every statement
    /// of a call inside an atomic batch goes there (no replica, no query
    /// cache: it must see the batch's own writes and nobody else may see
    /// them before the commit).
    async fn in_batch(
        &mut self,
        kind: InBatch,
        statement: String,
        params: Vec<backend::Value>,
    ) -> Result<Done, SqlError> {
        let op = match kind {
            InBatch::Query => "query",
            InBatch::Execute => "execute",
        };
        let watch = self.watch(op, &statement);
        let result = match self
            .instance
            .sql
            .ambient
            .as_mut()
            .and_then(|a| a.tx.as_mut())
        {
            None => Err(SqlError::TransactionClosed),
            Some(tx) => match kind {
                InBatch::Query => tx
                    .query(&statement, params.clone())
                    .instrument(watch.span.clone())
                    .await
                    .map(Done::Rows),
                InBatch::Execute => tx
                    .execute(&statement, params.clone())
                    .instrument(watch.span.clone())
                    .await
                    .map(Done::Affected),
            },
        };
        if result.is_ok()
            && (kind == InBatch::Execute || may_write(&statement))
            && let Some(ambient) = self.instance.sql.ambient.as_mut()
        {
            ambient.written.push(statement.clone());
        }
        self.record(watch, result.as_ref().err(), statement, params);
        result
    }

    pub(super) async fn query_in_batch(
        &mut self,
        statement: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<Rows, Error>> {
        Ok(
            match self
                .in_batch(InBatch::Query, statement, from_wit(params))
                .await
            {
                Ok(Done::Rows(rows)) => Ok(to_wit_rows(rows)),
                Ok(Done::Affected(_)) => Ok(to_wit_rows(backend::Rows::default())),
                Err(err) => Err(to_wit_error(err)),
            },
        )
    }

    pub(super) async fn execute_in_batch(
        &mut self,
        statement: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<u64, Error>> {
        Ok(
            match self
                .in_batch(InBatch::Execute, statement, from_wit(params))
                .await
            {
                Ok(Done::Affected(n)) => Ok(n),
                Ok(Done::Rows(_)) => Ok(0),
                Err(err) => Err(to_wit_error(err)),
            },
        )
    }

    /// Undoes savepoint `name` (a guest transaction dropped uncommitted
    /// inside the batch): rolled back to, then released. When that fails
    /// the batch's transaction is dropped, so the batch fails.
    pub(super) async fn roll_back_savepoint(&mut self, name: &str) {
        let Some(tx) = self
            .instance
            .sql
            .ambient
            .as_mut()
            .and_then(|a| a.tx.as_mut())
        else {
            return;
        };
        let mut undone = tx
            .execute(&format!("ROLLBACK TO SAVEPOINT {name}"), Vec::new())
            .await;
        if undone.is_ok() {
            undone = tx
                .execute(&format!("RELEASE SAVEPOINT {name}"), Vec::new())
                .await;
        }
        if let Err(err) = undone {
            tracing::warn!(%err, "cannot roll back to a savepoint; the batch fails");
            self.instance.sql.ambient = Some(Ambient::default());
        }
    }
}

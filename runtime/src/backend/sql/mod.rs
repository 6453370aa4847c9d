//! SQL backends behind one API: SQLite (a file per plugin, the embedded
//! default) and PostgreSQL (a schema and login role per plugin). The
//! capability layer converts WIT values to these types and back.
//!
//! Layer: `backend`; it may call `config` and the other backends it opens
//! (`backend::jobs`, `backend::runtime_store`, the cache under the query
//! cache), never `capability` or the layers above. Split by concern:
//! `value` (values, rows, errors), `service` (the service, its stores,
//! cluster roles), `db` (a plugin's database handle), `transaction`
//! (transactions and the SQLite outbox), `pool` (what both engines share
//! around one statement), then the engines (`sqlite`, `postgres`,
//! `replica`), the `breaker` that fails fast while PostgreSQL is down,
//! the statement `guard`, `shape` and the query `cache`.

mod breaker;
mod cache;
mod db;
pub(crate) mod guard;
mod pool;
mod postgres;
mod replica;
mod service;
pub(crate) mod shape;
mod sqlite;
mod transaction;
mod value;

pub use breaker::Breaker;
pub use cache::{QueryCache, ReadSet};
pub use db::PluginDb;
pub use guard::check_statement;
pub use replica::{ReplicaStats, format_lsn, parse_lsn};
pub use service::{Leader, SqlService};
pub use shape::shape;
pub use transaction::Transaction;
pub use value::{Rows, SqlError, Value};

pub(crate) use postgres::map_error as postgres_error;
pub(crate) use sqlite::map_error as sqlite_error;

/// One migration to apply.
#[derive(Debug, Clone)]
pub struct Migration {
    /// Increasing id.
    pub id: u32,
    /// Description.
    pub name: String,
    /// The SQL for this backend.
    pub sql: String,
}

/// The identifier-safe form of a plugin name (`my-plugin` → `my_plugin`).
pub fn ident(plugin: &str) -> String {
    plugin.replace('-', "_")
}

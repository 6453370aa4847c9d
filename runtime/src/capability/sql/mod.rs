//! `trellis:plugin/sql`: the plugin's own database. Converts WIT values to
//! the backend's and back; the backend (`backend::sql`) does the isolation
//! and the work. A plugin without the `sql` grant never gets here: it does
//! not load.
//!
//! Layer: `capability`; it may call `backend::sql` (the database), `monitor`
//! (spans, stats, error groups) and the other capabilities (`jobs`' outbox),
//! never `plugin` or the layers above. The host calls are split by concern:
//! `watch` (spans, N+1, slow-query plans), `query` (the `sql` interface:
//! consistency routing, writes recorded, the query cache), `batch` (the
//! atomic batch's ambient transaction and its savepoints), `transaction`
//! (the guest's `transaction` resource), `convert` (WIT values), and
//! `setup` (the capability's phases).

mod batch;
mod convert;
mod query;
mod setup;
mod transaction;
mod watch;

use crate::backend::sql::PluginDb;
use crate::capability::HostState;
use crate::capability::bindings::sql::Error;
pub use batch::{Ambient, AmbientSlot};
pub use setup::{Sql, SqlInstance, SqlPlugin, SqlWatch, committed};
pub use transaction::SqlTransaction;
pub(crate) use transaction::tx_of;

/// The header that carries the consistency token: the primary's WAL
/// position after the request's writes (out), or one the client saw (in).
pub const CONSISTENCY_HEADER: &str = "x-trellis-lsn";

impl HostState {
    /// `db.system.name` of the plugin's database.
    fn db_system(&self) -> &'static str {
        match &self.plugin.capabilities.sql.db {
            Some(PluginDb::Postgres(_)) => "postgresql",
            _ => "sqlite",
        }
    }

    fn db(&self) -> Result<&PluginDb, Error> {
        self.plugin.capabilities.sql.db.as_ref().ok_or_else(|| {
            Error::PermissionDenied(format!(
                "plugin `{}` has no database: grant it `sql`",
                self.plugin.name
            ))
        })
    }
}

/// Whether a statement run through `query` on the primary may have written.
fn may_write(statement: &str) -> bool {
    let head = statement.trim_start();
    !(head.len() >= 6 && head[..6].eq_ignore_ascii_case("select"))
}

//! The plugin's own database: a SQLite file of its own by default, or a
//! PostgreSQL schema of its own. Needs the `sql` capability.
//!
//! Use `$1`, `$2`, ... placeholders: they work on both backends.
//!
//! ```no_run
//! use trellis_sdk::{params, sql};
//! #[derive(serde::Deserialize)]
//! struct Note { id: i64, title: String }
//! # fn notes() -> trellis_sdk::Result<Vec<Note>> {
//! let notes: Vec<Note> = sql::query("SELECT id, title FROM notes WHERE id > $1", &params![0])?
//!     .decode()?;
//! # Ok(notes) }
//! ```

use serde::de::DeserializeOwned;

use crate::bindings::trellis::plugin::sql as host;
pub use crate::bindings::trellis::plugin::sql::{Consistency, Error as SqlError, Value};

/// Builds an array of [`Value`]s from anything convertible:
/// `&params![id, "title", None::<i64>]`.
#[macro_export]
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        [$($crate::sql::Value::from($value)),*]
    };
}

/// A query's result.
#[derive(Debug, Clone)]
pub struct Rows {
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
}

impl Rows {
    fn from_host(rows: host::Rows) -> Self {
        Rows {
            columns: rows.columns,
            rows: rows.rows,
        }
    }

    /// Column names (empty when there are no rows).
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The raw rows.
    pub fn rows(&self) -> &[Vec<Value>] {
        &self.rows
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Every row deserialized into `T` by column name (serde). Integers,
    /// reals, text, booleans and JSON map to their JSON forms; timestamps
    /// are microseconds since the epoch; blobs are byte arrays.
    pub fn decode<T: DeserializeOwned>(&self) -> crate::Result<Vec<T>> {
        self.rows.iter().map(|row| self.decode_row(row)).collect()
    }

    /// The first row deserialized into `T`, if any.
    pub fn first<T: DeserializeOwned>(&self) -> crate::Result<Option<T>> {
        self.rows
            .first()
            .map(|row| self.decode_row(row))
            .transpose()
    }

    fn decode_row<T: DeserializeOwned>(&self, row: &[Value]) -> crate::Result<T> {
        let object: serde_json::Map<String, serde_json::Value> = self
            .columns
            .iter()
            .cloned()
            .zip(row.iter().map(to_json))
            .collect();
        serde_json::from_value(serde_json::Value::Object(object))
            .map_err(|err| crate::Error::internal(format!("cannot decode a row: {err}")))
    }
}

fn to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Integer(i) => (*i).into(),
        Value::Real(x) => (*x).into(),
        Value::Text(s) => s.clone().into(),
        Value::Blob(b) => b.clone().into(),
        Value::Boolean(b) => (*b).into(),
        Value::Json(s) => serde_json::from_str(s).unwrap_or_else(|_| s.clone().into()),
        Value::Timestamp(t) => (*t).into(),
    }
}

/// Runs a statement that returns rows, on the primary.
pub fn query(statement: &str, params: &[Value]) -> Result<Rows, SqlError> {
    host::query(statement, params, Consistency::Primary).map(Rows::from_host)
}

/// Runs a read that may be served by a read replica.
pub fn query_replica_ok(statement: &str, params: &[Value]) -> Result<Rows, SqlError> {
    host::query(statement, params, Consistency::ReplicaOk).map(Rows::from_host)
}

/// Runs a read whose result may come from the host's query cache for up to
/// `ttl` (a replica may serve it too). Any write by this plugin to a table
/// it reads invalidates it at once.
pub fn query_cached(
    statement: &str,
    params: &[Value],
    ttl: std::time::Duration,
) -> Result<Rows, SqlError> {
    let ttl_ms = u32::try_from(ttl.as_millis()).unwrap_or(u32::MAX);
    host::query_cached(statement, params, Consistency::ReplicaOk, ttl_ms).map(Rows::from_host)
}

/// Runs a statement; returns the number of rows it changed.
pub fn execute(statement: &str, params: &[Value]) -> Result<u64, SqlError> {
    host::execute(statement, params)
}

/// Writes one row only if `token` is newer than the fencing token stored
/// with it: the correctness half of a [`lock`](crate::lock) lease. A holder
/// whose lease ran out while it paused carries an older token than the holder
/// that took over, so its late write is refused instead of overwriting newer
/// data.
///
/// Inserts the row `key_column = key` with `columns` and `fence_column =
/// token`, or, when the key exists, updates those columns where the stored
/// fence is lower than `token`, in one statement that runs on SQLite (3.24
/// or later) and PostgreSQL:
///
/// ```sql
/// INSERT INTO t (key, c1, fence) VALUES ($1, $2, $3)
/// ON CONFLICT (key) DO UPDATE SET c1 = excluded.c1, fence = excluded.fence
/// WHERE t.fence < excluded.fence
/// ```
///
/// `key_column` must be the table's primary key or carry a unique constraint,
/// and `fence_column` an integer column. Returns `Ok(true)` when the row was
/// written, `Ok(false)` when the stored fence is at least `token` (a stale
/// holder: nothing was written). Identifiers must be ASCII letters, digits
/// and `_`, not starting with a digit, or it is a 500 `invalid identifier`.
/// A token above `i64::MAX` is stored as `i64::MAX`.
pub fn fenced_write(
    table: &str,
    key_column: &str,
    key: Value,
    columns: &[(&str, Value)],
    fence_column: &str,
    token: u64,
) -> crate::Result<bool> {
    let names: Vec<&str> = std::iter::once(key_column)
        .chain(columns.iter().map(|(name, _)| *name))
        .chain(std::iter::once(fence_column))
        .collect();
    for name in std::iter::once(table).chain(names.iter().copied()) {
        check_identifier(name)?;
    }
    let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
    let updates: Vec<String> = names[1..]
        .iter()
        .map(|name| format!("{name} = excluded.{name}"))
        .collect();
    let statement = format!(
        "INSERT INTO {table} ({}) VALUES ({}) ON CONFLICT ({key_column}) DO UPDATE SET {} \
         WHERE {table}.{fence_column} < excluded.{fence_column}",
        names.join(", "),
        placeholders.join(", "),
        updates.join(", "),
    );
    let params: Vec<Value> = std::iter::once(key)
        .chain(columns.iter().map(|(_, value)| value.clone()))
        .chain(std::iter::once(Value::Integer(
            i64::try_from(token).unwrap_or(i64::MAX),
        )))
        .collect();
    Ok(execute(&statement, &params)? > 0)
}

/// An identifier safe to splice into SQL unquoted: ASCII letters, digits and
/// `_`, not starting with a digit.
fn check_identifier(name: &str) -> crate::Result<()> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(crate::Error::internal(format!(
            "invalid identifier `{name}`: use ASCII letters, digits and `_`, not starting \
             with a digit"
        )))
    }
}

/// A transaction: dropped without [`Transaction::commit`], it rolls back.
#[derive(Debug)]
pub struct Transaction {
    inner: host::Transaction,
}

/// Starts a transaction on the primary.
pub fn begin() -> Result<Transaction, SqlError> {
    host::begin().map(|inner| Transaction { inner })
}

impl Transaction {
    /// Runs a statement that returns rows inside the transaction.
    pub fn query(&self, statement: &str, params: &[Value]) -> Result<Rows, SqlError> {
        self.inner.query(statement, params).map(Rows::from_host)
    }

    /// Runs a statement inside the transaction.
    pub fn execute(&self, statement: &str, params: &[Value]) -> Result<u64, SqlError> {
        self.inner.execute(statement, params)
    }

    /// Commits.
    pub fn commit(self) -> Result<(), SqlError> {
        self.inner.commit()
    }

    /// The host handle, for interfaces that take a transaction.
    pub(crate) fn raw(&self) -> &host::Transaction {
        &self.inner
    }
}

impl SqlError {
    /// Whether this is a unique/foreign-key/not-null/check violation.
    pub fn is_constraint_violation(&self) -> bool {
        matches!(self, SqlError::ConstraintViolation(_))
    }

    /// The error's message.
    pub fn message(&self) -> &str {
        match self {
            SqlError::ConstraintViolation(m)
            | SqlError::Syntax(m)
            | SqlError::PermissionDenied(m)
            | SqlError::Timeout(m)
            | SqlError::Unavailable(m)
            | SqlError::Invalid(m) => m,
            SqlError::TransactionClosed => "the transaction is already finished",
        }
    }

    /// A stable name of the error kind.
    pub fn kind(&self) -> &'static str {
        match self {
            SqlError::ConstraintViolation(_) => "constraint_violation",
            SqlError::Syntax(_) => "syntax",
            SqlError::PermissionDenied(_) => "permission_denied",
            SqlError::Timeout(_) => "timeout",
            SqlError::Unavailable(_) => "unavailable",
            SqlError::Invalid(_) => "invalid",
            SqlError::TransactionClosed => "transaction_closed",
        }
    }
}

/// `?` on a SQL error in a handler: a constraint violation is a 409, an
/// unavailable database a 503 with `Retry-After`, a timeout a 504, anything
/// else a 500.
impl From<SqlError> for crate::Error {
    fn from(err: SqlError) -> Self {
        let status = match err {
            SqlError::ConstraintViolation(_) => 409,
            SqlError::Unavailable(_) => 503,
            SqlError::Timeout(_) => 504,
            _ => 500,
        };
        let error = crate::Error::new(status, format!("database: {}", err.message()))
            .with_code(format!("sql_{}", err.kind()));
        if status == 503 {
            error.with_header("retry-after", "1")
        } else {
            error
        }
    }
}

macro_rules! value_from {
    ($($t:ty => $variant:ident $(as $cast:ty)?),* $(,)?) => {
        $(impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::$variant(v $(as $cast)?)
            }
        })*
    };
}

value_from! {
    i64 => Integer,
    i32 => Integer as i64,
    u32 => Integer as i64,
    f64 => Real,
    bool => Boolean,
    String => Text,
    Vec<u8> => Blob,
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}

impl From<serde_json::Value> for Value {
    fn from(v: serde_json::Value) -> Self {
        Value::Json(v.to_string())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map(Into::into).unwrap_or(Value::Null)
    }
}

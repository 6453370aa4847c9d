//! The SQL backend's data: parameter and column values, rows, and the
//! errors a statement fails with (as the guest sees them).
//!
//! Layer: `backend` (part of `backend::sql`); plain data, it calls nothing
//! of the crate.

/// A parameter or column value.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A 64-bit integer.
    Integer(i64),
    /// A double.
    Real(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
    /// A boolean.
    Boolean(bool),
    /// JSON text.
    Json(String),
    /// Microseconds since the Unix epoch, UTC.
    Timestamp(i64),
}

/// Column names and rows of values.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Rows {
    /// Column names in order.
    pub columns: Vec<String>,
    /// Rows of values in column order.
    pub rows: Vec<Vec<Value>>,
}

/// Why a statement failed, as the guest sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SqlError {
    /// A constraint was violated.
    #[error("constraint violation: {0}")]
    Constraint(String),
    /// The statement does not parse.
    #[error("syntax error: {0}")]
    Syntax(String),
    /// Not allowed for this plugin.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The statement timed out.
    #[error("timeout: {0}")]
    Timeout(String),
    /// The database cannot be reached.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else wrong with the statement or parameters.
    #[error("invalid statement: {0}")]
    Invalid(String),
    /// The transaction was already committed or rolled back.
    #[error("the transaction is already finished")]
    TransactionClosed,
}

impl SqlError {
    /// A short name of the kind, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            SqlError::Constraint(_) => "constraint",
            SqlError::Syntax(_) => "syntax",
            SqlError::PermissionDenied(_) => "permission_denied",
            SqlError::Timeout(_) => "timeout",
            SqlError::Unavailable(_) => "unavailable",
            SqlError::Invalid(_) => "invalid",
            SqlError::TransactionClosed => "transaction_closed",
        }
    }
}

//! WIT values of `trellis:plugin/sql` to the backend's and back: parameters
//! in, rows and errors out. Pure data mapping.
//!
//! Layer: `capability` (part of `capability::sql`); it may use the WIT
//! bindings and `backend::sql`'s value types, nothing else.

use crate::backend::sql::{self as backend, SqlError};
use crate::capability::bindings::sql::{Error, Rows, Value};

pub(super) fn from_wit(params: Vec<Value>) -> Vec<backend::Value> {
    params
        .into_iter()
        .map(|v| match v {
            Value::Null => backend::Value::Null,
            Value::Integer(i) => backend::Value::Integer(i),
            Value::Real(x) => backend::Value::Real(x),
            Value::Text(s) => backend::Value::Text(s),
            Value::Blob(b) => backend::Value::Blob(b),
            Value::Boolean(b) => backend::Value::Boolean(b),
            Value::Json(s) => backend::Value::Json(s),
            Value::Timestamp(t) => backend::Value::Timestamp(t),
        })
        .collect()
}

fn to_wit_value(value: backend::Value) -> Value {
    match value {
        backend::Value::Null => Value::Null,
        backend::Value::Integer(i) => Value::Integer(i),
        backend::Value::Real(x) => Value::Real(x),
        backend::Value::Text(s) => Value::Text(s),
        backend::Value::Blob(b) => Value::Blob(b),
        backend::Value::Boolean(b) => Value::Boolean(b),
        backend::Value::Json(s) => Value::Json(s),
        backend::Value::Timestamp(t) => Value::Timestamp(t),
    }
}

pub(super) fn to_wit_rows(rows: backend::Rows) -> Rows {
    Rows {
        columns: rows.columns,
        rows: rows
            .rows
            .into_iter()
            .map(|row| row.into_iter().map(to_wit_value).collect())
            .collect(),
    }
}

pub(super) fn to_wit_error(err: SqlError) -> Error {
    match err {
        SqlError::Constraint(m) => Error::ConstraintViolation(m),
        SqlError::Syntax(m) => Error::Syntax(m),
        SqlError::PermissionDenied(m) => Error::PermissionDenied(m),
        SqlError::Timeout(m) => Error::Timeout(m),
        SqlError::Unavailable(m) => Error::Unavailable(m),
        SqlError::Invalid(m) => Error::Invalid(m),
        SqlError::TransactionClosed => Error::TransactionClosed,
    }
}

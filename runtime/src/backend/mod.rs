//! Backends: the storage engines capabilities run on. Layer: the bottom;
//! knows sqlx, not WIT or hyper.

pub mod sql;

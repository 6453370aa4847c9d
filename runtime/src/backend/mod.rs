//! Backends: the storage engines capabilities run on. Layer: the bottom;
//! knows sqlx and fred, not WIT or hyper.

pub mod cache;
pub mod jobs;
pub mod lock;
pub mod redis;
pub mod runtime_store;
pub mod sql;

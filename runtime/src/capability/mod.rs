//! The host side of the WIT imports: one module per interface. Each checks
//! nothing about hyper or routing; it sees only the instance's
//! [`HostState`](crate::plugin::HostState). Grants are enforced when a plugin
//! loads: a component that imports an interface the operator did not grant
//! does not load.

mod config;
mod log;
pub mod sql;
pub mod trace;

/// `trellis:plugin/types` has only types; its host trait is empty.
impl crate::plugin::bindings::types::Host for crate::plugin::HostState {}

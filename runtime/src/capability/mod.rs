//! The host side of the WIT imports: one module per interface. Each checks
//! nothing about hyper or routing; it sees only the instance's
//! [`HostState`](crate::plugin::HostState). Grants are enforced when a plugin
//! loads: a component that imports an interface the operator did not grant
//! does not load.

pub mod cache;
mod config;
pub mod jobs;
pub mod lock;
mod log;
pub mod sql;
pub mod trace;

use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, TraceContextExt};

use crate::plugin::HostState;

impl HostState {
    /// A client span for one host call under the guest call's span, inside
    /// a traced request; `None` outside one (loading, migrations).
    pub(crate) fn host_span(
        &self,
        name: &'static str,
        mut attributes: Vec<KeyValue>,
    ) -> Option<opentelemetry::Context> {
        if !self.trace.has_active_span() {
            return None;
        }
        attributes.push(KeyValue::new("trellis.plugin", self.plugin.name.clone()));
        Some(crate::monitor::child_span(
            &self.plugin.tracer,
            &self.trace,
            name,
            SpanKind::Client,
            attributes,
        ))
    }
}

/// Ends a host call's span, marked failed with `error` when given.
pub(crate) fn end_span(span: Option<opentelemetry::Context>, error: Option<&str>) {
    if let Some(cx) = span {
        if let Some(error) = error {
            cx.span()
                .set_status(opentelemetry::trace::Status::error(error.to_string()));
        }
        cx.span().end();
    }
}

/// `trellis:plugin/types` has only types; its host trait is empty.
impl crate::plugin::bindings::types::Host for crate::plugin::HostState {}

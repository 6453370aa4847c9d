//! What the runtime knows about itself: Prometheus metrics, sliding windows
//! of recent requests per route, process resource use, and request traces
//! (OpenTelemetry spans, exported over OTLP and kept in a local store), failures grouped by
//! fingerprint, and alert rules over all of it. Cross-cutting:
//! `plugin`, `capability` and `http` record here; `http::builtin` serves it.

pub mod alerts;
mod errors;
mod metrics;
pub mod otlp_metrics;
mod process;
mod trace;
mod trace_store;
mod window;

pub use errors::{Cursor as ErrorCursor, ErrorGroups, Group as ErrorGroup, Occurrence};
pub use metrics::{
    CacheStats, HostSnapshot, LockStats, Metrics, PluginStats, ResponseCacheStats, RouteStats,
    RouteSummary,
};
pub use process::{Process, sample as process_sample};
pub use trace::{Tracing, child as child_span, resume as resume_trace, trace_id, traceparent};
pub use trace_store::TraceStore;
pub use window::{Summary, Window};

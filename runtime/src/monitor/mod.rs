//! What the runtime knows about itself: Prometheus metrics, sliding windows
//! of recent requests per route, process resource use, and request traces
//! (OpenTelemetry spans, exported over OTLP and kept in a local store), failures grouped by
//! fingerprint. A low layer: it imports only `config` and `clock`;
//! `backend`, `capability`, `plugin` and `http` record here, `alerts`
//! evaluates rules over it and `http::api` serves it.

mod errors;
mod metrics;
pub mod otlp_metrics;
mod process;
mod rate;
mod trace;
mod trace_store;
mod window;

pub use errors::{
    Cursor as ErrorCursor, ErrorGroups, Group as ErrorGroup, Occurrence, fingerprint,
};
pub use metrics::{
    CacheStats, HostSnapshot, LockStats, Metrics, PluginStats, ResponseCacheStats, RouteStats,
    RouteSummary,
};
pub use process::{Process, sample as process_sample};
pub use rate::RateLimit;
pub use trace::{
    Tracing, child as child_span, inject as inject_trace, records_children, resume as resume_trace,
    trace_id, traceparent,
};
pub use trace_store::TraceStore;
pub use window::{Summary, Window};

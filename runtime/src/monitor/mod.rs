//! What the runtime knows about itself: Prometheus metrics, sliding windows
//! of recent requests per route, and process resource use. Cross-cutting:
//! `plugin`, `capability` and `http` record here; `http::builtin` serves it.

mod metrics;
mod process;
mod window;

pub use metrics::{HostSnapshot, Metrics, PluginStats, RouteStats, RouteSummary};
pub use process::{Process, sample as process_sample};
pub use window::{Summary, Window};

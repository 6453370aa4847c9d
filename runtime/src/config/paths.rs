//! Paths the runtime serves itself, which no plugin route or mount may
//! claim. Config checks mounts against them; the router checks routes.
//!
//! Layer: config, the bottom; it uses nothing of the crate.

/// Paths the runtime serves itself (see `http::api`), with everything
/// below them. A plugin route on one of them is a load error.
pub const RESERVED: &[&str] = &[
    "/healthz",
    "/readyz",
    "/metrics",
    "/dashboard",
    "/admin",
    "/api/v1/monitoring",
    "/api/v1/batch",
    "/api/v1/jobs",
    "/api/v1/openapi.json",
];

/// Whether `path` (or a route pattern) is one the runtime serves itself.
pub fn is_reserved(path: &str) -> bool {
    RESERVED.iter().any(|r| below(path, r).is_some())
}

/// What follows `prefix` in `path` when `path` is `prefix` itself (`""`) or
/// a path under it (`"/1/cancel"` of `/api/v1/jobs/1/cancel` under
/// `/api/v1/jobs`); `None` for other paths (`/api/v1/jobsx`).
pub fn below<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    path.strip_prefix(prefix)
        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
}

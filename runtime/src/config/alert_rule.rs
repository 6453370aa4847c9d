//! Alert conditions: `signal{label="value",...}[window] op number`, over the
//! runtime's own figures. Parsed once at config time; errors say what is
//! wrong with the expression.
//!
//! Signals per route (labels `plugin`, `route`, `method`; window `10s`,
//! `1m` (default) or `5m`): `route_p50_ms`, `route_p95_ms`, `route_p99_ms`,
//! `route_error_rate`, `route_rps`, `route_requests`. Host-wide (no labels,
//! no window): `query_cache_hit_rate`, `instances_in_use`,
//! `process_rss_bytes`, `error_groups_spiking`, `job_queue_depth`.
//!
//! Layer: config, the bottom; it uses nothing of the crate. `alerts`
//! evaluates the parsed expressions.

use std::collections::BTreeMap;
use std::time::Duration;

/// A parsed condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// The signal.
    pub signal: Signal,
    /// Label matchers (per-route signals only).
    pub matchers: BTreeMap<String, String>,
    /// The window of per-route signals.
    pub window: Duration,
    /// The comparison.
    pub op: Op,
    /// The threshold.
    pub threshold: f64,
}

/// What a condition looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// A latency percentile of a route, in ms.
    RouteLatency(u8),
    /// Share of a route's requests answered 5xx.
    RouteErrorRate,
    /// Requests per second of a route.
    RouteRps,
    /// Requests of a route in the window.
    RouteRequests,
    /// Query cache hits over lookups, since start.
    QueryCacheHitRate,
    /// Plugin instances alive.
    InstancesInUse,
    /// Resident memory of the process.
    ProcessRss,
    /// Error groups flagged spiking.
    ErrorGroupsSpiking,
    /// Jobs waiting in the queue (available, scheduled, retryable).
    JobQueueDepth,
}

impl Signal {
    fn parse(name: &str) -> Option<Signal> {
        Some(match name {
            "route_p50_ms" => Signal::RouteLatency(50),
            "route_p95_ms" => Signal::RouteLatency(95),
            "route_p99_ms" => Signal::RouteLatency(99),
            "route_error_rate" => Signal::RouteErrorRate,
            "route_rps" => Signal::RouteRps,
            "route_requests" => Signal::RouteRequests,
            "query_cache_hit_rate" => Signal::QueryCacheHitRate,
            "instances_in_use" => Signal::InstancesInUse,
            "process_rss_bytes" => Signal::ProcessRss,
            "error_groups_spiking" => Signal::ErrorGroupsSpiking,
            "job_queue_depth" => Signal::JobQueueDepth,
            _ => return None,
        })
    }

    /// Whether the signal has one value per route.
    pub fn per_route(self) -> bool {
        matches!(
            self,
            Signal::RouteLatency(_)
                | Signal::RouteErrorRate
                | Signal::RouteRps
                | Signal::RouteRequests
        )
    }
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl Op {
    /// Whether `value op threshold` holds.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
            Op::Lt => value < threshold,
            Op::Le => value <= threshold,
            Op::Eq => value == threshold,
            Op::Ne => value != threshold,
        }
    }
}

const SIGNALS: &str = "route_p50_ms, route_p95_ms, route_p99_ms, route_error_rate, route_rps, \
                       route_requests, query_cache_hit_rate, instances_in_use, process_rss_bytes, \
                       error_groups_spiking, job_queue_depth";

impl Expr {
    /// Parses `signal{k="v"}[window] op number`.
    pub fn parse(text: &str) -> Result<Expr, String> {
        let text = text.trim();
        let name_end = text
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(text.len());
        let name = &text[..name_end];
        let signal = Signal::parse(name)
            .ok_or_else(|| format!("unknown signal `{name}`; known: {SIGNALS}"))?;
        let mut rest = text[name_end..].trim_start();
        let mut matchers = BTreeMap::new();
        if let Some(inner) = rest.strip_prefix('{') {
            let close = inner.find('}').ok_or("a `{` without its `}`")?;
            matchers = parse_matchers(&inner[..close])?;
            rest = inner[close + 1..].trim_start();
        }
        let mut window = Duration::from_secs(60);
        if let Some(inner) = rest.strip_prefix('[') {
            let close = inner.find(']').ok_or("a `[` without its `]`")?;
            window = match inner[..close].trim() {
                "10s" => Duration::from_secs(10),
                "1m" => Duration::from_secs(60),
                "5m" => Duration::from_secs(300),
                other => return Err(format!("window `{other}` is not one of 10s, 1m, 5m")),
            };
            rest = inner[close + 1..].trim_start();
        }
        if !signal.per_route() && (!matchers.is_empty() || window != Duration::from_secs(60)) {
            return Err(format!(
                "`{name}` is host-wide: it takes no labels or window"
            ));
        }
        let (op, number) = [
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            (">", Op::Gt),
            ("<", Op::Lt),
        ]
        .iter()
        .find_map(|(token, op)| rest.strip_prefix(token).map(|n| (*op, n)))
        .ok_or_else(|| format!("expected a comparison (>, >=, <, <=, ==, !=) after `{name}`"))?;
        let threshold: f64 = number
            .trim()
            .parse()
            .map_err(|_| format!("`{}` is not a number", number.trim()))?;
        Ok(Expr {
            signal,
            matchers,
            window,
            op,
            threshold,
        })
    }
}

fn parse_matchers(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut matchers = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("`{pair}` is not label=\"value\""))?;
        let key = key.trim();
        if !matches!(key, "plugin" | "route" | "method") {
            return Err(format!(
                "unknown label `{key}`; known: plugin, route, method"
            ));
        }
        let value = value
            .trim()
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .ok_or_else(|| format!("the value of `{key}` must be in double quotes"))?;
        matchers.insert(key.to_string(), value.to_string());
    }
    Ok(matchers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_route_and_host_conditions() {
        let expr =
            Expr::parse(r#"route_p95_ms{route="/hello", method="GET"}[5m] > 200"#).expect("valid");
        assert_eq!(expr.signal, Signal::RouteLatency(95));
        assert_eq!(
            expr.matchers.get("route").map(String::as_str),
            Some("/hello")
        );
        assert_eq!(expr.window, Duration::from_secs(300));
        assert_eq!(expr.op, Op::Gt);
        assert_eq!(expr.threshold, 200.0);
        let expr = Expr::parse("query_cache_hit_rate < 0.8").expect("valid");
        assert_eq!(expr.op, Op::Lt);
        assert!(expr.op.holds(0.5, expr.threshold));
    }

    #[test]
    fn explains_what_is_wrong() {
        let cases = [
            ("route_p42_ms > 1", "unknown signal"),
            ("route_rps{path=\"/x\"} > 1", "unknown label `path`"),
            ("route_rps{route=/x} > 1", "double quotes"),
            ("route_rps[2m] > 1", "window `2m`"),
            ("route_rps 1", "expected a comparison"),
            ("route_rps > lots", "not a number"),
            ("instances_in_use{route=\"/x\"} > 1", "host-wide"),
        ];
        for (text, expected) in cases {
            let err = Expr::parse(text).expect_err(text);
            assert!(err.contains(expected), "{text}: {err}");
        }
    }
}

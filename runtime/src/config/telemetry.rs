//! `[log]`, `[telemetry]` and `[alerts]`: how logs are written, request
//! tracing and metric export, and the alert rules; their defaults and
//! checks (an alert's expression is parsed by [`super::alert_rule`]).
//!
//! Layer: config, the bottom. It uses nothing of the crate but the config
//! module's own error type and its sibling `alert_rule`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, alert_rule, invalid};

/// `[log]`: how logs are written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `pretty` (for people) or `json` (for machines).
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `info,trellis=debug`. `TRELLIS_LOG`
    /// wins over it.
    pub level: String,
    /// Add diagnostic headers to responses (`x-trellis-n-plus-one`). For
    /// development; off in production.
    pub debug_headers: bool,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Pretty,
            level: "info".into(),
            debug_headers: false,
        }
    }
}

/// `[telemetry]`: request tracing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// OTLP/HTTP collector base URL (`http://host:4318`); spans are posted
    /// to `<url>/v1/traces` as protobuf. Absent: no export.
    pub otlp_endpoint: Option<String>,
    /// Share of traces exported, 0 to 1 (a sampled incoming `traceparent`
    /// is always followed). The local store keeps errors and slow requests
    /// whatever the ratio.
    pub sampling_ratio: f64,
    /// Requests at least this slow are kept in the local store first.
    #[serde(with = "humantime_serde")]
    pub slow_request: Duration,
    /// Traces the local store keeps.
    pub traces_kept: usize,
    /// Requests per second, at most, whose spans are recorded for the local
    /// store though they are not sampled for export (a burst of as many
    /// is allowed). Beyond it, an unsampled request costs no span
    /// recording, and if it fails or is slow the store keeps its root span
    /// alone.
    pub recorded_per_second: u32,
    /// `service.name` of exported spans and metrics.
    pub service_name: String,
    /// With an OTLP endpoint: also post the metrics of `/metrics` to
    /// `<url>/v1/metrics`.
    pub export_metrics: bool,
    /// How often metrics are posted.
    #[serde(with = "humantime_serde")]
    pub metrics_interval: Duration,
    /// CA certificates (PEM) trusted for an `https://` endpoint besides
    /// the system's roots.
    pub ca_file: Option<PathBuf>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            sampling_ratio: 0.1,
            slow_request: Duration::from_millis(500),
            traces_kept: 1000,
            recorded_per_second: 100,
            service_name: "trellis".into(),
            export_metrics: true,
            metrics_interval: Duration::from_secs(30),
            ca_file: None,
        }
    }
}

/// `[alerts]`: rules over the runtime's own figures, evaluated every
/// `evaluation_interval`; transitions are posted to every webhook.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// How often rules are evaluated.
    #[serde(with = "humantime_serde")]
    pub evaluation_interval: Duration,
    /// `http://` or `https://` URLs that receive a JSON POST per
    /// transition.
    pub webhooks: Vec<String>,
    /// The rules (`[[alerts.rules]]`).
    pub rules: Vec<AlertRule>,
    /// CA certificates (PEM) trusted for `https://` webhooks besides the
    /// system's roots.
    pub ca_file: Option<PathBuf>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            evaluation_interval: Duration::from_secs(10),
            webhooks: Vec::new(),
            rules: Vec::new(),
            ca_file: None,
        }
    }
}

/// One `[[alerts.rules]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// The alert's name (`alertname` label).
    pub name: String,
    /// The condition, e.g. `route_p95_ms{route="/hello"} > 200`.
    pub expr: String,
    /// How long the condition must hold before the alert fires.
    #[serde(rename = "for", with = "humantime_serde", default)]
    pub for_: Duration,
    /// How long a firing alert keeps firing after the condition clears.
    #[serde(with = "humantime_serde", default)]
    pub keep_firing_for: Duration,
    /// `info`, `warning` or `critical`.
    #[serde(default = "default_severity")]
    pub severity: String,
    /// Extra labels on every alert of the rule.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// A line for people, sent with notifications.
    #[serde(default)]
    pub summary: Option<String>,
}

fn default_severity() -> String {
    "warning".into()
}

/// Whether `url` is one the runtime's HTTP clients can post to.
fn is_http_url(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

impl LogConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if let Err(err) = tracing_subscriber::EnvFilter::try_new(&self.level) {
            return invalid("log.level", &format!("not a valid filter: {err}"));
        }
        Ok(())
    }
}

impl TelemetryConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(0.0..=1.0).contains(&self.sampling_ratio) {
            return invalid("telemetry.sampling_ratio", "must be between 0 and 1");
        }
        if let Some(url) = &self.otlp_endpoint
            && !is_http_url(url)
        {
            return invalid(
                "telemetry.otlp_endpoint",
                "must be an http:// or https:// URL (OTLP over HTTP with protobuf)",
            );
        }
        if self.metrics_interval < Duration::from_secs(1) {
            return invalid("telemetry.metrics_interval", "must be at least 1s");
        }
        if self.traces_kept == 0 {
            return invalid("telemetry.traces_kept", "must be at least 1");
        }
        Ok(())
    }
}

impl AlertsConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.evaluation_interval < Duration::from_millis(50) {
            return invalid("alerts.evaluation_interval", "must be at least 50ms");
        }
        if let Some(i) = self.webhooks.iter().position(|u| !is_http_url(u)) {
            return invalid(
                &format!("alerts.webhooks[{i}]"),
                "must be an http:// or https:// URL",
            );
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, rule) in self.rules.iter().enumerate() {
            if !names.insert(rule.name.as_str()) {
                return invalid(&format!("alerts.rules[{i}].name"), "must be set and unique");
            }
            rule.validate(i)?;
        }
        Ok(())
    }
}

impl AlertRule {
    /// Checks of one rule, the `i`th; the uniqueness of its name is the
    /// caller's.
    fn validate(&self, i: usize) -> Result<(), ConfigError> {
        let key = |field: &str| format!("alerts.rules[{i}].{field}");
        if self.name.is_empty() {
            return invalid(&key("name"), "must be set and unique");
        }
        alert_rule::Expr::parse(&self.expr).map_err(|message| ConfigError::Invalid {
            key: key("expr"),
            message,
        })?;
        if !matches!(self.severity.as_str(), "info" | "warning" | "critical") {
            return invalid(&key("severity"), "one of info, warning, critical");
        }
        Ok(())
    }
}

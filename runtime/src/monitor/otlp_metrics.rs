//! OTLP metrics export: every `telemetry.metrics_interval` the same figures
//! `/metrics` shows are posted to `<otlp_endpoint>/v1/metrics` as an OTLP
//! protobuf `ExportMetricsServiceRequest`, cumulative like Prometheus.
//!
//! The metrics live in one `prometheus-client` registry, which can only be
//! read by encoding it; its OpenMetrics text (the format `/metrics` serves,
//! written by that crate) is read back here, family by family: counters
//! become monotonic sums, gauges gauges, histograms explicit-bucket
//! histograms, info metrics gauges of 1. One source of truth, two wire
//! formats, and nothing on the request path.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, header};
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use crate::tls::{self, TlsError};

/// Time one export may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Posts the runtime's metrics to an OTLP/HTTP collector.
#[derive(Debug, Clone)]
pub struct MetricsExporter {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    url: String,
    resource: Resource,
    /// When the counters started (ns since the epoch).
    start: u64,
}

impl MetricsExporter {
    /// An exporter to `<endpoint>/v1/metrics` for the resource
    /// `service.name` = `service`, `service.instance.id` = `node`.
    /// An `https://` endpoint trusts the system's roots and `ca_file`.
    pub fn new(
        endpoint: &str,
        service: &str,
        node: &str,
        ca_file: Option<&Path>,
    ) -> Result<MetricsExporter, TlsError> {
        Ok(MetricsExporter {
            client: Client::builder(TokioExecutor::new()).build(tls::https_connector(ca_file)?),
            url: format!("{}/v1/metrics", endpoint.trim_end_matches('/')),
            resource: Resource {
                attributes: vec![
                    text("service.name", service),
                    text("service.instance.id", node),
                    text("service.version", env!("CARGO_PKG_VERSION")),
                ],
                ..Resource::default()
            },
            start: now_ns(),
        })
    }

    /// Sends `exposition` (the OpenMetrics text of the registry).
    pub async fn push(&self, exposition: &str) -> Result<(), String> {
        let request = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(self.resource.clone()),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "trellis".into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        ..InstrumentationScope::default()
                    }),
                    metrics: convert(exposition, self.start, now_ns()),
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        let body = Bytes::from(request.encode_to_vec());
        let request = Request::post(&self.url)
            .header(header::CONTENT_TYPE, "application/x-protobuf")
            .body(Full::new(body))
            .map_err(|e| format!("invalid OTLP URL: {e}"))?;
        match tokio::time::timeout(EXPORT_TIMEOUT, self.client.request(request)).await {
            Ok(Ok(response)) if response.status().is_success() => Ok(()),
            Ok(Ok(response)) => Err(format!("collector answered {}", response.status())),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err("timed out".into()),
        }
    }
}

/// Pushes `render()` every `interval` until dropped (the first push after
/// one interval).
pub async fn run(exporter: MetricsExporter, interval: Duration, render: impl Fn() -> String) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        match exporter.push(&render()).await {
            Ok(()) if failing => {
                failing = false;
                tracing::info!(url = %exporter.url, "metrics export works again");
            }
            Ok(()) => {}
            // Warned once per outage, not every interval.
            Err(err) if !failing => {
                failing = true;
                tracing::warn!(url = %exporter.url, %err, "metrics export failed");
            }
            Err(_) => {}
        }
    }
}

/// A sample's labels, in the exposition's order.
type Labels = Vec<(String, String)>;

/// One sample of a family: its name's suffix after the family name
/// (`_total`, `_bucket`, …), labels and value.
#[derive(Debug)]
struct Sample {
    suffix: String,
    labels: Labels,
    value: f64,
}

/// One metric family of the exposition.
#[derive(Debug, Default)]
struct Family {
    name: String,
    kind: String,
    help: String,
    unit: String,
    samples: Vec<Sample>,
}

/// The OTLP metrics of an OpenMetrics `exposition`, with cumulative points
/// from `start` to `now` (ns since the epoch).
fn convert(exposition: &str, start: u64, now: u64) -> Vec<Metric> {
    parse(exposition)
        .into_iter()
        .filter_map(|family| metric(family, start, now))
        .collect()
}

fn parse(exposition: &str) -> Vec<Family> {
    let mut families: Vec<Family> = Vec::new();
    for line in exposition.lines() {
        if let Some(meta) = line.strip_prefix("# ") {
            let mut parts = meta.splitn(3, ' ');
            let (Some(what), Some(name)) = (parts.next(), parts.next()) else {
                continue;
            };
            let rest = parts.next().unwrap_or_default().to_string();
            if families.last().is_none_or(|f| f.name != name) && what != "EOF" {
                families.push(Family {
                    name: name.to_string(),
                    ..Family::default()
                });
            }
            let Some(family) = families.last_mut() else {
                continue;
            };
            match what {
                "TYPE" => family.kind = rest,
                "HELP" => family.help = rest,
                "UNIT" => family.unit = rest,
                _ => {}
            }
            continue;
        }
        let Some(family) = families.last_mut() else {
            continue;
        };
        if let Some((name, labels, value)) = sample(line)
            && let Some(suffix) = name.strip_prefix(family.name.as_str())
        {
            family.samples.push(Sample {
                suffix: suffix.to_string(),
                labels,
                value,
            });
        }
    }
    families
}

/// `name{k="v",…} value [timestamp] [# exemplar]`.
fn sample(line: &str) -> Option<(&str, Labels, f64)> {
    let end = line.find(['{', ' '])?;
    let name = &line[..end];
    let mut rest = &line[end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices();
        let mut key = String::new();
        loop {
            let (i, c) = chars.next()?;
            match c {
                '}' => {
                    rest = &inner[i + 1..];
                    break;
                }
                ',' | ' ' => {}
                '=' => {
                    let (_, '"') = chars.next()? else {
                        return None;
                    };
                    let mut value = String::new();
                    loop {
                        match chars.next()?.1 {
                            '"' => break,
                            '\\' => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                other => value.push(other),
                            },
                            other => value.push(other),
                        }
                    }
                    labels.push((std::mem::take(&mut key), value));
                }
                other => key.push(other),
            }
        }
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some((name, labels, value))
}

fn metric(family: Family, start: u64, now: u64) -> Option<Metric> {
    let point = |labels: &Labels, value: f64| NumberDataPoint {
        attributes: labels.iter().map(|(k, v)| text(k, v)).collect(),
        start_time_unix_nano: start,
        time_unix_nano: now,
        value: Some(number_data_point::Value::AsDouble(value)),
        ..NumberDataPoint::default()
    };
    let data = match family.kind.as_str() {
        "counter" => metric::Data::Sum(Sum {
            data_points: family
                .samples
                .iter()
                .filter(|sample| sample.suffix == "_total")
                .map(|sample| point(&sample.labels, sample.value))
                .collect(),
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        }),
        "histogram" => metric::Data::Histogram(Histogram {
            data_points: histogram_points(&family.samples, start, now),
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        }),
        // Gauges, and info metrics as a gauge of 1 with their labels.
        _ => metric::Data::Gauge(Gauge {
            data_points: family
                .samples
                .iter()
                .map(|sample| point(&sample.labels, sample.value))
                .collect(),
        }),
    };
    Some(Metric {
        unit: unit(&family),
        name: family.name,
        description: family.help,
        data: Some(data),
        ..Metric::default()
    })
}

/// The UCUM unit: the family's `# UNIT`, else its name's unit suffix.
fn unit(family: &Family) -> String {
    let unit = if family.unit.is_empty() {
        family.name.rsplit('_').next().unwrap_or_default()
    } else {
        family.unit.as_str()
    };
    match unit {
        "seconds" => "s",
        "bytes" => "By",
        _ => "",
    }
    .into()
}

/// Histogram points from `_bucket` (cumulative, by `le`), `_sum` and
/// `_count` samples, one point per label set.
fn histogram_points(samples: &[Sample], start: u64, now: u64) -> Vec<HistogramDataPoint> {
    let mut points: BTreeMap<Labels, HistogramDataPoint> = BTreeMap::new();
    for Sample {
        suffix,
        labels,
        value,
    } in samples
    {
        let mut labels = labels.clone();
        let le = labels
            .iter()
            .position(|(k, _)| k == "le")
            .map(|i| labels.remove(i).1);
        let point = points
            .entry(labels.clone())
            .or_insert_with(|| HistogramDataPoint {
                attributes: labels.iter().map(|(k, v)| text(k, v)).collect(),
                start_time_unix_nano: start,
                time_unix_nano: now,
                ..HistogramDataPoint::default()
            });
        match (suffix.as_str(), le) {
            ("_sum", _) => point.sum = Some(*value),
            ("_count", _) => point.count = *value as u64,
            ("_bucket", Some(le)) => {
                // Cumulative in the exposition; per bucket in OTLP.
                let below: u64 = point.bucket_counts.iter().sum();
                point
                    .bucket_counts
                    .push((*value as u64).saturating_sub(below));
                if let Ok(bound) = le.parse::<f64>()
                    && bound.is_finite()
                {
                    point.explicit_bounds.push(bound);
                }
            }
            _ => {}
        }
    }
    points.into_values().collect()
}

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..KeyValue::default()
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPOSITION: &str = r#"# HELP trellis_http_requests Requests served.
# TYPE trellis_http_requests counter
trellis_http_requests_total{plugin="hello",route="/hello/{name}",class="2xx"} 7
trellis_http_requests_total{plugin="notes",route="/a\"b",class="5xx"} 1
# HELP trellis_request_duration_seconds Latency.
# TYPE trellis_request_duration_seconds histogram
# UNIT trellis_request_duration_seconds seconds
trellis_request_duration_seconds_sum{plugin="hello"} 0.5
trellis_request_duration_seconds_count{plugin="hello"} 4
trellis_request_duration_seconds_bucket{le="0.01",plugin="hello"} 1
trellis_request_duration_seconds_bucket{le="0.1",plugin="hello"} 3
trellis_request_duration_seconds_bucket{le="+Inf",plugin="hello"} 4
# HELP trellis_instances_in_use Instances alive.
# TYPE trellis_instances_in_use gauge
trellis_instances_in_use 3
# HELP trellis_build Build.
# TYPE trellis_build info
trellis_build_info{version="0.1.0"} 1
# EOF
"#;

    fn by_name<'a>(metrics: &'a [Metric], name: &str) -> &'a metric::Data {
        metrics
            .iter()
            .find(|m| m.name == name)
            .and_then(|m| m.data.as_ref())
            .unwrap_or_else(|| panic!("{name} missing"))
    }

    fn attribute(point: &[KeyValue], key: &str) -> String {
        point
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| match &v.value {
                Some(any_value::Value::StringValue(s)) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default()
    }

    #[test]
    fn each_kind_converts() {
        let metrics = convert(EXPOSITION, 1, 2);
        assert_eq!(metrics.len(), 4);
        let metric::Data::Sum(sum) = by_name(&metrics, "trellis_http_requests") else {
            panic!("counter is not a sum");
        };
        assert!(sum.is_monotonic);
        assert_eq!(sum.data_points.len(), 2);
        assert_eq!(
            sum.data_points[0].value,
            Some(number_data_point::Value::AsDouble(7.0))
        );
        assert_eq!(
            attribute(&sum.data_points[0].attributes, "route"),
            "/hello/{name}"
        );
        assert_eq!(attribute(&sum.data_points[1].attributes, "route"), "/a\"b");

        let metric::Data::Histogram(histogram) =
            by_name(&metrics, "trellis_request_duration_seconds")
        else {
            panic!("histogram is not a histogram");
        };
        let point = &histogram.data_points[0];
        assert_eq!(point.count, 4);
        assert_eq!(point.sum, Some(0.5));
        assert_eq!(point.explicit_bounds, vec![0.01, 0.1]);
        assert_eq!(point.bucket_counts, vec![1, 2, 1]);
        assert_eq!(attribute(&point.attributes, "plugin"), "hello");
        assert!(point.attributes.iter().all(|kv| kv.key != "le"));
        let unit = metrics
            .iter()
            .find(|m| m.name == "trellis_request_duration_seconds")
            .map(|m| m.unit.clone());
        assert_eq!(unit.as_deref(), Some("s"));

        let metric::Data::Gauge(gauge) = by_name(&metrics, "trellis_build") else {
            panic!("info is not a gauge");
        };
        assert_eq!(
            attribute(&gauge.data_points[0].attributes, "version"),
            "0.1.0"
        );
    }

    #[test]
    fn the_real_registry_converts_without_loss_of_families() {
        let metrics = crate::monitor::Metrics::new();
        metrics.unrouted(404);
        let text = metrics.render(&crate::monitor::HostSnapshot::default());
        let families = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        assert_eq!(convert(&text, 1, 2).len(), families);
    }
}

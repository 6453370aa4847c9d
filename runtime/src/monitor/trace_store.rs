//! Recent traces kept in memory, tail-kept: when full, an ordinary trace is
//! evicted before any error or slow one. Spans wait per trace until the
//! request's server span ends, then the whole trace is stored. Behind
//! `GET /api/v1/monitoring/traces[/{trace_id}]`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanKind, Status, TraceId};
use opentelemetry::{Value, trace::SpanId};
use opentelemetry_sdk::trace::SpanData;
use serde_json::{Value as Json, json};

/// Traces with spans still open, at most; beyond, the waiting spans are
/// dropped (they belong to requests that never finished).
const MAX_PENDING: usize = 10_000;

/// Spans kept per trace (a request that enqueues many jobs gains a few per
/// job); later ones are counted, not kept.
const MAX_SPANS: usize = 2_000;

/// The store.
#[derive(Debug)]
pub struct TraceStore {
    capacity: usize,
    slow: Duration,
    inner: Mutex<Inner>,
    dropped_export: AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    pending: HashMap<TraceId, Vec<SpanData>>,
    /// Errors and slow traces, oldest first.
    notable: VecDeque<Arc<Trace>>,
    /// The rest, oldest first.
    ordinary: VecDeque<Arc<Trace>>,
    /// The ids in `notable` and `ordinary`: most server spans start a
    /// trace, and this spares them a scan of every stored one.
    stored: HashSet<TraceId>,
}

/// One finished request's spans (and those of the jobs it enqueued).
#[derive(Debug, Clone)]
pub struct Trace {
    trace_id: TraceId,
    /// In the order they completed their part of the trace.
    spans: Vec<SpanData>,
    /// Spans beyond [`MAX_SPANS`], not kept.
    dropped: u64,
    error: bool,
    slow: bool,
}

impl TraceStore {
    /// A store of `capacity` traces; requests over `slow` count as slow.
    pub fn new(capacity: usize, slow: Duration) -> TraceStore {
        TraceStore {
            capacity: capacity.max(1),
            slow,
            inner: Mutex::default(),
            dropped_export: AtomicU64::new(0),
        }
    }

    /// How long a request must take to be kept as slow.
    pub fn slow_request(&self) -> Duration {
        self.slow
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A finished span; a server span completes its trace, and so does a
    /// consumer span (a job's run), which joins the stored trace of the
    /// request that enqueued it when that is still kept.
    pub fn add(&self, span: SpanData) {
        let trace_id = span.span_context.trace_id();
        let mut inner = self.lock();
        if !matches!(span.span_kind, SpanKind::Server | SpanKind::Consumer) {
            if inner.pending.len() >= MAX_PENDING && !inner.pending.contains_key(&trace_id) {
                inner.pending.clear();
            }
            inner.pending.entry(trace_id).or_default().push(span);
            return;
        }
        // Owned again once no reader holds it (readers hold it briefly), so
        // a request that enqueued thousands of jobs does not copy its trace
        // per job.
        let mut trace = match inner.take(trace_id) {
            Some(earlier) => Arc::try_unwrap(earlier).unwrap_or_else(|shared| (*shared).clone()),
            None => Trace {
                trace_id,
                spans: Vec::new(),
                dropped: 0,
                error: false,
                slow: false,
            },
        };
        trace.error |= matches!(span.status, Status::Error { .. });
        trace.slow |= elapsed(&span) >= self.slow;
        let pending = inner.pending.remove(&trace_id).unwrap_or_default();
        for span in pending.into_iter().chain([span]) {
            if trace.spans.len() < MAX_SPANS {
                trace.spans.push(span);
            } else {
                trace.dropped += 1;
            }
        }
        let (error, slow) = (trace.error, trace.slow);
        let trace = Arc::new(trace);
        if inner.notable.len() + inner.ordinary.len() >= self.capacity {
            let evicted = match inner.ordinary.pop_front() {
                Some(evicted) => Some(evicted),
                None => inner.notable.pop_front(),
            };
            if let Some(evicted) = evicted {
                inner.stored.remove(&evicted.trace_id);
            }
        }
        inner.stored.insert(trace_id);
        if error || slow {
            inner.notable.push_back(trace);
        } else {
            inner.ordinary.push_back(trace);
        }
    }

    /// A sampled span that could not be queued for export.
    pub fn dropped_export(&self) {
        self.dropped_export.fetch_add(1, Ordering::Relaxed);
    }

    /// Sampled spans dropped because the export queue was full.
    pub fn dropped_exports(&self) -> u64 {
        self.dropped_export.load(Ordering::Relaxed)
    }

    /// The newest `limit` traces (only errors and slow ones if `notable`),
    /// newest first, as summaries.
    pub fn list(&self, limit: usize, notable: bool) -> Vec<Json> {
        let inner = self.lock();
        let mut traces: Vec<&Arc<Trace>> = inner.notable.iter().collect();
        if !notable {
            traces.extend(inner.ordinary.iter());
        }
        traces.sort_by_key(|t| std::cmp::Reverse(t.root().map(|s| s.end_time)));
        traces
            .into_iter()
            .take(limit)
            .map(|t| t.summary())
            .collect()
    }

    /// One trace by its hex id, with every span.
    pub fn get(&self, trace_id: &str) -> Option<Json> {
        let id = TraceId::from_hex(trace_id).ok()?;
        let inner = self.lock();
        inner
            .notable
            .iter()
            .chain(inner.ordinary.iter())
            .find(|t| t.trace_id == id)
            .map(|t| t.detail())
    }
}

impl Inner {
    /// Removes the stored trace `id`, if kept.
    fn take(&mut self, id: TraceId) -> Option<Arc<Trace>> {
        if !self.stored.remove(&id) {
            return None;
        }
        for list in [&mut self.notable, &mut self.ordinary] {
            if let Some(at) = list.iter().position(|t| t.trace_id == id) {
                return list.remove(at);
            }
        }
        None
    }
}

impl Trace {
    /// The request's server span, else (a job's own trace) the last span.
    fn root(&self) -> Option<&SpanData> {
        self.spans
            .iter()
            .find(|s| s.span_kind == SpanKind::Server)
            .or(self.spans.last())
    }

    fn summary(&self) -> Json {
        let root = self.root();
        json!({
            "trace_id": self.trace_id.to_string(),
            "name": root.map(|s| s.name.to_string()),
            "start": root.map(|s| unix_ms(s.start_time)),
            "duration_ms": root.map(|s| millis(elapsed(s))),
            "error": self.error,
            "slow": self.slow,
            "spans": self.spans.len(),
            "spans_dropped": self.dropped,
            "attributes": root.map(|s| attributes(&s.attributes)),
        })
    }

    fn detail(&self) -> Json {
        let mut summary = self.summary();
        let spans: Vec<Json> = self
            .spans
            .iter()
            .map(|s| {
                json!({
                    "span_id": s.span_context.span_id().to_string(),
                    "parent_span_id": (s.parent_span_id != SpanId::INVALID)
                        .then(|| s.parent_span_id.to_string()),
                    "name": s.name.to_string(),
                    "kind": format!("{:?}", s.span_kind).to_lowercase(),
                    "start": unix_ms(s.start_time),
                    "duration_ms": millis(elapsed(s)),
                    "status": match &s.status {
                        Status::Error { description } => json!({"error": description.to_string()}),
                        Status::Ok => json!("ok"),
                        Status::Unset => json!("unset"),
                    },
                    "attributes": attributes(&s.attributes),
                    "events": s.events.iter().map(|e| json!({
                        "name": e.name.to_string(),
                        "time": unix_ms(e.timestamp),
                        "attributes": attributes(&e.attributes),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        summary["span_list"] = Json::Array(spans);
        summary
    }
}

fn elapsed(span: &SpanData) -> Duration {
    span.end_time
        .duration_since(span.start_time)
        .unwrap_or_default()
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn unix_ms(t: SystemTime) -> f64 {
    millis(t.duration_since(UNIX_EPOCH).unwrap_or_default())
}

fn attributes(attributes: &[opentelemetry::KeyValue]) -> Json {
    let map = attributes
        .iter()
        .map(|kv| {
            let value = match &kv.value {
                Value::Bool(b) => json!(b),
                Value::I64(i) => json!(i),
                Value::F64(f) => json!(f),
                other => json!(other.to_string()),
            };
            (kv.key.to_string(), value)
        })
        .collect();
    Json::Object(map)
}

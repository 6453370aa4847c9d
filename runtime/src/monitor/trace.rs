//! Request tracing with OpenTelemetry: one tracer provider per server, a
//! W3C `traceparent`/`tracestate` propagator, head sampling for export, and
//! a processor that feeds every finished trace to the local [`TraceStore`]
//! and the sampled spans to OTLP/HTTP export.
//!
//! Sampled spans are recorded and exported. Of the unsampled requests, up
//! to `telemetry.recorded_per_second` have their spans recorded for the
//! local store only (the sampler turns their "drop" into "record only");
//! the rest cost no recording, and one of them that fails or is slow
//! reaches the store as its root span alone ([`Tracing::unrecorded`]). So
//! errors and slow requests reach the local store whatever the ratio, and
//! a busy server does not record every request.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{
    Link, SpanContext, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer as _,
    TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::HeaderExtractor;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    Sampler, SamplingDecision, SamplingResult, SdkTracer, SdkTracerProvider, ShouldSample,
    SpanData, SpanExporter, SpanProcessor,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::rate::RateLimit;
use super::trace_store::TraceStore;
use crate::config::TelemetryConfig;

/// Spans waiting for export at most; more are dropped (and counted).
const EXPORT_QUEUE: usize = 8192;
/// Spans per OTLP request at most.
const EXPORT_BATCH: usize = 512;
/// How often a partial batch is sent.
const EXPORT_INTERVAL: Duration = Duration::from_millis(500);

/// The server's tracer, its local trace store and its exporter.
#[derive(Debug)]
pub struct Tracing {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    store: Arc<TraceStore>,
    propagator: TraceContextPropagator,
    export: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Tracing {
    /// A tracer for `config`. With an OTLP endpoint, starts the export task
    /// (call within a tokio runtime).
    pub fn new(config: &TelemetryConfig) -> Result<Tracing, String> {
        let store = Arc::new(TraceStore::new(config.traces_kept, config.slow_request));
        let (sender, export) = match &config.otlp_endpoint {
            Some(endpoint) => {
                let (sender, receiver) = mpsc::channel(EXPORT_QUEUE);
                let exporter = exporter(endpoint, &config.service_name, config.ca_file.as_deref())?;
                (
                    Some(sender),
                    Some(tokio::spawn(export_loop(exporter, receiver))),
                )
            }
            None => (None, None),
        };
        let sampler = RecordLocally {
            export: Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                config.sampling_ratio,
            ))),
            budget: Arc::new(RateLimit::new(
                config.recorded_per_second,
                config.recorded_per_second,
            )),
        };
        let provider = SdkTracerProvider::builder()
            .with_sampler(sampler)
            .with_span_processor(Collector {
                store: store.clone(),
                export: ArcSwapOption::from(sender.map(Arc::new)),
            })
            .build();
        let tracer = provider.tracer("trellis");
        Ok(Tracing {
            provider,
            tracer,
            store,
            propagator: TraceContextPropagator::new(),
            export: std::sync::Mutex::new(export),
        })
    }

    /// The tracer, for child spans.
    pub fn tracer(&self) -> &SdkTracer {
        &self.tracer
    }

    /// Recent traces.
    pub fn store(&self) -> &TraceStore {
        &self.store
    }

    /// The server span of a request, child of the caller's `traceparent`
    /// when it sent a valid one.
    pub fn server_span(&self, headers: &HeaderMap, method: &str, path: &str) -> Context {
        let parent = self.propagator.extract(&HeaderExtractor(headers));
        let span = self
            .tracer
            .span_builder(method.to_string())
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("http.request.method", method.to_string()),
                KeyValue::new("url.path", path.to_string()),
            ])
            .start_with_context(&self.tracer, &parent);
        parent.with_span(span)
    }

    /// A request whose spans were not recorded (unsampled, past the
    /// recording budget) ended after `elapsed`: if it `failed` (with that
    /// description) or was slow, its root span alone goes to the local
    /// store, named and with the attributes `root` gives, so no error or
    /// slow request is missing from it.
    pub fn unrecorded(
        &self,
        cx: &Context,
        elapsed: Duration,
        failed: Option<String>,
        root: impl FnOnce() -> (String, Vec<KeyValue>),
    ) {
        if failed.is_none() && elapsed < self.store.slow_request() {
            return;
        }
        let (name, attributes) = root();
        let end_time = std::time::SystemTime::now();
        self.store.add(SpanData {
            span_context: cx.span().span_context().clone(),
            parent_span_id: opentelemetry::trace::SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Server,
            name: name.into(),
            start_time: end_time.checked_sub(elapsed).unwrap_or(end_time),
            end_time,
            attributes,
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status: failed.map_or(opentelemetry::trace::Status::Unset, |description| {
                opentelemetry::trace::Status::error(description)
            }),
            instrumentation_scope: opentelemetry::InstrumentationScope::builder("trellis").build(),
        });
    }

    /// Stops exporting: sends what is queued, within `timeout`.
    pub async fn flush(&self, timeout: Duration) {
        let _ = self.provider.shutdown();
        let task = self.export.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task
            && tokio::time::timeout(timeout, task).await.is_err()
        {
            tracing::warn!("trace export did not finish in time");
        }
    }
}

/// The W3C `traceparent` of `cx`'s span, to store with work that runs
/// later (a job); `None` outside a trace.
pub fn traceparent(cx: &Context) -> Option<String> {
    let span = cx.span();
    let context = span.span_context();
    context
        .is_valid()
        .then(|| String::from_utf8_lossy(&traceparent_bytes(context)).into_owned())
}

/// The W3C `traceparent` (version 00) of `context`, as
/// `TraceContextPropagator` writes it, in place: the propagator's
/// formatting and allocations were a thirtieth of a `hello` request's
/// instructions, and a request writes it once or twice.
fn traceparent_bytes(context: &SpanContext) -> [u8; 55] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut value = [b'-'; 55];
    let mut put = |at: usize, bytes: &[u8]| {
        for (i, byte) in bytes.iter().enumerate() {
            value[at + 2 * i] = HEX[usize::from(byte >> 4)];
            value[at + 2 * i + 1] = HEX[usize::from(byte & 15)];
        }
    };
    put(0, &[0]);
    put(3, &context.trace_id().to_bytes());
    put(36, &context.span_id().to_bytes());
    put(53, &[(context.trace_flags() & TraceFlags::SAMPLED).to_u8()]);
    value
}

/// A span continuing the trace of a stored `traceparent` (a root span
/// without one): how a job's run joins the request that enqueued it.
pub fn resume(
    tracer: &SdkTracer,
    traceparent: Option<&str>,
    name: impl Into<std::borrow::Cow<'static, str>>,
    kind: SpanKind,
    attributes: Vec<KeyValue>,
) -> Context {
    let mut headers = HeaderMap::new();
    if let Some(value) = traceparent.and_then(|v| http::HeaderValue::from_str(v).ok()) {
        headers.insert("traceparent", value);
    }
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(&headers));
    let span = tracer
        .span_builder(name)
        .with_kind(kind)
        .with_attributes(attributes)
        .start_with_context(tracer, &parent);
    parent.with_span(span)
}

/// The trace id of `cx`'s span, hex, when it has one.
pub fn trace_id(cx: &Context) -> Option<String> {
    let span = cx.span();
    let context = span.span_context();
    context.is_valid().then(|| context.trace_id().to_string())
}

/// A child span of `parent` named `name`, with `attributes`; `parent`
/// itself when the child would not be recorded (see [`records_children`]),
/// so neither the span nor its attributes are built for nothing.
pub fn child(
    tracer: &SdkTracer,
    parent: &Context,
    name: impl Into<std::borrow::Cow<'static, str>>,
    kind: SpanKind,
    attributes: impl FnOnce() -> Vec<KeyValue>,
) -> Context {
    if !records_children(parent) {
        return parent.clone();
    }
    let span = tracer
        .span_builder(name)
        .with_kind(kind)
        .with_attributes(attributes())
        .start_with_context(tracer, parent);
    parent.with_span(span)
}

/// Whether a child span of `parent` is recorded: not outside a request
/// (loading, migrations: no span), and not under a span of this process
/// that is not recorded (the sampler drops its children: an unsampled
/// parent, and no local recording of it). Under a remote parent the
/// sampler decides.
pub fn records_children(parent: &Context) -> bool {
    if !parent.has_active_span() {
        return false;
    }
    let span = parent.span();
    span.is_recording() || span.span_context().is_remote()
}

/// The ratio sampler's decision for export; an unsampled span is still
/// recorded for the local store when its parent in this process is, or,
/// starting a trace here, while the recording budget lasts.
#[derive(Debug, Clone)]
struct RecordLocally {
    export: Sampler,
    budget: Arc<RateLimit>,
}

impl ShouldSample for RecordLocally {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let mut result =
            self.export
                .should_sample(parent_context, trace_id, name, span_kind, attributes, links);
        if result.decision == SamplingDecision::Drop {
            let local_parent = parent_context
                .filter(|cx| cx.has_active_span() && !cx.span().span_context().is_remote());
            let record = match local_parent {
                Some(parent) => parent.span().is_recording(),
                None => self.budget.take(),
            };
            if record {
                result.decision = SamplingDecision::RecordOnly;
            }
        }
        result
    }
}

/// Finished spans go to the store, and sampled ones to export.
#[derive(Debug)]
struct Collector {
    store: Arc<TraceStore>,
    /// Taken at shutdown, which ends the export task.
    export: ArcSwapOption<mpsc::Sender<SpanData>>,
}

impl SpanProcessor for Collector {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if span.span_context.is_sampled()
            && let Some(export) = &*self.export.load()
            && export.try_send(span.clone()).is_err()
        {
            self.store.dropped_export();
        }
        self.store.add(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.export.store(None);
        Ok(())
    }
}

fn exporter(
    endpoint: &str,
    service: &str,
    ca_file: Option<&std::path::Path>,
) -> Result<opentelemetry_otlp::SpanExporter, String> {
    let connector =
        crate::tls::https_connector(ca_file).map_err(|e| format!("telemetry.ca_file: {e}"))?;
    let client =
        opentelemetry_http::hyper::HyperClient::new(connector, Duration::from_secs(10), None);
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .build()
        .map_err(|e| format!("cannot build the OTLP exporter: {e}"))?;
    exporter.set_resource(
        &opentelemetry_sdk::Resource::builder()
            .with_service_name(service.to_string())
            .build(),
    );
    Ok(exporter)
}

/// Batches sampled spans and sends them, every [`EXPORT_INTERVAL`] or
/// [`EXPORT_BATCH`] spans; sends the rest when the channel closes.
async fn export_loop(
    exporter: opentelemetry_otlp::SpanExporter,
    mut spans: mpsc::Receiver<SpanData>,
) {
    let mut batch = Vec::with_capacity(EXPORT_BATCH);
    let mut tick = tokio::time::interval(EXPORT_INTERVAL);
    loop {
        tokio::select! {
            span = spans.recv() => match span {
                Some(span) => {
                    batch.push(span);
                    if batch.len() >= EXPORT_BATCH {
                        send(&exporter, &mut batch).await;
                    }
                }
                None => break,
            },
            _ = tick.tick() => send(&exporter, &mut batch).await,
        }
    }
    send(&exporter, &mut batch).await;
}

async fn send(exporter: &opentelemetry_otlp::SpanExporter, batch: &mut Vec<SpanData>) {
    if batch.is_empty() {
        return;
    }
    let spans = std::mem::take(batch);
    let count = spans.len();
    if let Err(err) = exporter.export(spans).await {
        tracing::warn!(%err, spans = count, "trace export failed");
    }
}

/// Writes `traceparent` (and `tracestate` when there is one) of `cx` into
/// `headers`: a response's, or an outgoing request's. A `tracestate`
/// already in `headers` is replaced, or removed when `cx` has none.
pub fn inject(cx: &Context, headers: &mut HeaderMap) {
    let span = cx.span();
    let context = span.span_context();
    if !context.is_valid() {
        return;
    }
    if let Ok(value) = HeaderValue::from_bytes(&traceparent_bytes(context)) {
        headers.insert(HeaderName::from_static("traceparent"), value);
    }
    let state = context.trace_state();
    let tracestate = HeaderName::from_static("tracestate");
    match (*state != TraceState::default())
        .then(|| HeaderValue::from_str(&state.header()).ok())
        .flatten()
    {
        Some(value) => {
            headers.insert(tracestate, value);
        }
        None => {
            headers.remove(tracestate);
        }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use opentelemetry_http::HeaderInjector;

    use super::*;

    /// What the SDK's propagator writes for `context`.
    fn propagated(context: &Context) -> HeaderMap {
        let mut headers = HeaderMap::new();
        TraceContextPropagator::new().inject_context(context, &mut HeaderInjector(&mut headers));
        if headers.get("tracestate").is_some_and(|v| v.is_empty()) {
            headers.remove("tracestate");
        }
        headers
    }

    #[test]
    fn inject_writes_what_the_propagator_writes() {
        let trace_id = TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").expect("hex");
        let span_id = SpanId::from_hex("b7ad6b7169203331").expect("hex");
        let state =
            TraceState::from_key_value([("vendor", "x1"), ("other", "y")]).expect("a valid state");
        for (flags, state) in [
            (TraceFlags::SAMPLED, TraceState::default()),
            (TraceFlags::default(), TraceState::default()),
            (TraceFlags::new(0xff), state),
        ] {
            let span = SpanContext::new(trace_id, span_id, flags, true, state);
            let context = Context::new().with_remote_span_context(span);
            // A tracestate already there is replaced, or removed.
            let mut headers = HeaderMap::new();
            headers.insert("tracestate", HeaderValue::from_static("stale=1"));
            inject(&context, &mut headers);
            assert_eq!(headers, propagated(&context));
            assert_eq!(
                traceparent(&context).as_deref(),
                headers.get("traceparent").and_then(|v| v.to_str().ok())
            );
        }
        let mut headers = HeaderMap::new();
        inject(&Context::new(), &mut headers);
        assert!(headers.is_empty());
        assert_eq!(traceparent(&Context::new()), None);
    }
}

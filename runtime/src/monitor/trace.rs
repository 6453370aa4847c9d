//! Request tracing with OpenTelemetry: one tracer provider per server, a
//! W3C `traceparent`/`tracestate` propagator, head sampling for export, and
//! a processor that feeds every finished trace to the local [`TraceStore`]
//! and the sampled spans to OTLP/HTTP export.
//!
//! Every span is recorded (the sampler turns "drop" into "record only"), so
//! errors and slow requests reach the local store whatever the ratio; only
//! sampled spans are exported.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use http::HeaderMap;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{
    Link, SpanKind, TraceContextExt, TraceId, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    Sampler, SamplingDecision, SamplingResult, SdkTracer, SdkTracerProvider, ShouldSample,
    SpanData, SpanExporter, SpanProcessor,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

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
        let sampler = RecordAll(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.sampling_ratio,
        ))));
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

    /// Writes `traceparent` (and `tracestate`) of `cx` into `headers`.
    pub fn inject(&self, cx: &Context, headers: &mut HeaderMap) {
        inject_with(&self.propagator, cx, headers);
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
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut headers = HeaderMap::new();
    TraceContextPropagator::new().inject_context(cx, &mut HeaderInjector(&mut headers));
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
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

/// A child span of `parent` named `name`, with `attributes`; no span when
/// `parent` has none (work outside a request: loading, migrations).
pub fn child(
    tracer: &SdkTracer,
    parent: &Context,
    name: impl Into<std::borrow::Cow<'static, str>>,
    kind: SpanKind,
    attributes: Vec<KeyValue>,
) -> Context {
    if !parent.has_active_span() {
        return parent.clone();
    }
    let span = tracer
        .span_builder(name)
        .with_kind(kind)
        .with_attributes(attributes)
        .start_with_context(tracer, parent);
    parent.with_span(span)
}

/// The ratio sampler's decision for export, but never "drop": unsampled
/// spans are still recorded for the local store.
#[derive(Debug, Clone)]
struct RecordAll(Sampler);

impl ShouldSample for RecordAll {
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
            self.0
                .should_sample(parent_context, trace_id, name, span_kind, attributes, links);
        if result.decision == SamplingDecision::Drop {
            result.decision = SamplingDecision::RecordOnly;
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
/// `headers`: a response's, or an outgoing request's.
pub fn inject(cx: &Context, headers: &mut HeaderMap) {
    inject_with(&TraceContextPropagator::new(), cx, headers);
}

fn inject_with(propagator: &TraceContextPropagator, cx: &Context, headers: &mut HeaderMap) {
    propagator.inject_context(cx, &mut HeaderInjector(headers));
    // The propagator writes an empty `tracestate` when there is none.
    if headers
        .get("tracestate")
        .is_some_and(|state| state.is_empty())
    {
        headers.remove("tracestate");
    }
}

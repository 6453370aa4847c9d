//! `trellis:plugin/trace`: spans from guest code. A guest span is an
//! OpenTelemetry span under the host's `plugin.call` span (or under another
//! guest span), so it lands in the request's trace, in the local store and
//! in OTLP export like the host's own. No grant is needed: a span reaches
//! nothing but the trace. A call may open [`MAX_SPANS`] spans; names and
//! values are cut at [`MAX_TEXT`] bytes.

use opentelemetry::trace::{SpanKind, Status, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use wasmtime::component::{HasSelf, Linker, Resource};

use super::bindings::trace::{self, Host, HostSpan};
use super::{Capability, HostState, PluginSetup, Runtime};
use crate::config::Limits;
use crate::monitor::child_span;

/// Spans one call may open; more is a fault.
pub const MAX_SPANS: u32 = 1000;
/// Longest name, key or value kept, in bytes.
pub const MAX_TEXT: usize = 1024;

/// The host side of a guest's `span` resource.
#[derive(Debug)]
pub struct GuestSpan {
    cx: Context,
}

fn cut(mut text: String) -> String {
    text.truncate(text.floor_char_boundary(MAX_TEXT));
    text
}

/// The `trace` capability: no service, no grant; it counts the spans an
/// instance opens.
#[derive(Debug)]
pub struct Trace;

/// Guest spans opened in this call.
#[derive(Debug, Default)]
pub struct SpansOpened(u32);

impl Capability for Trace {
    const NAME: &'static str = "trace";
    const NEEDS_GRANT: bool = false;
    type Plugin = ();
    type Instance = SpansOpened;

    async fn start(_runtime: &Runtime<'_>) -> Result<Self, String> {
        Ok(Trace)
    }

    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        trace::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)
    }

    async fn configure(&self, _plugin: &PluginSetup<'_>) -> Result<(), String> {
        Ok(())
    }

    fn unconfigured(&self, _plugin: &PluginSetup<'_>) {}

    fn prepare(&self, _plugin: &(), _limits: &Limits) -> SpansOpened {
        SpansOpened::default()
    }
}

impl Host for HostState {}

impl HostSpan for HostState {
    async fn new(
        &mut self,
        name: String,
        parent: Option<Resource<GuestSpan>>,
    ) -> wasmtime::Result<Resource<GuestSpan>> {
        self.instance.trace.0 += 1;
        if self.instance.trace.0 > MAX_SPANS {
            wasmtime::bail!("plugin opened more than {MAX_SPANS} trace spans in one call");
        }
        let parent = match &parent {
            Some(parent) => self.table.get(parent)?.cx.clone(),
            None => self.trace.clone(),
        };
        // Outside a traced request (loading, migrations) this is no span.
        let cx = child_span(
            &self.plugin.tracer,
            &parent,
            cut(name),
            SpanKind::Internal,
            Vec::new,
        );
        Ok(self.table.push(GuestSpan { cx })?)
    }

    async fn set_attribute(
        &mut self,
        this: Resource<GuestSpan>,
        key: String,
        value: String,
    ) -> wasmtime::Result<()> {
        let span = self.table.get(&this)?;
        span.cx
            .span()
            .set_attribute(KeyValue::new(cut(key), cut(value)));
        Ok(())
    }

    async fn add_event(
        &mut self,
        this: Resource<GuestSpan>,
        name: String,
        attributes: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        let span = self.table.get(&this)?;
        let attributes = attributes
            .into_iter()
            .take(128)
            .map(|(k, v)| KeyValue::new(cut(k), cut(v)))
            .collect();
        span.cx.span().add_event(cut(name), attributes);
        Ok(())
    }

    async fn set_error(
        &mut self,
        this: Resource<GuestSpan>,
        message: String,
    ) -> wasmtime::Result<()> {
        let span = self.table.get(&this)?;
        span.cx.span().set_status(Status::error(cut(message)));
        Ok(())
    }

    async fn end(&mut self, this: Resource<GuestSpan>) -> wasmtime::Result<()> {
        self.table.get(&this)?.cx.span().end();
        Ok(())
    }

    async fn drop(&mut self, this: Resource<GuestSpan>) -> wasmtime::Result<()> {
        let span = self.table.delete(this)?;
        span.cx.span().end();
        Ok(())
    }
}

//! What one instance holds: its plugin's context, the request id, the
//! memory limiter, the resource table and one state per capability.

use std::sync::Arc;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;

use super::{Capabilities, InstanceStates, PluginStates};
use crate::config::Limits;
use crate::monitor::{ErrorGroups, PluginStats};

/// Per-plugin data shared by all its instances.
#[derive(Debug)]
pub struct PluginContext {
    /// The operator's name for the plugin.
    pub name: String,
    /// The plugin's limits.
    pub limits: Limits,
    /// Its metric handles.
    pub stats: PluginStats,
    /// The server's tracer, for spans of host calls.
    pub tracer: opentelemetry_sdk::trace::SdkTracer,
    /// Where host-call failures are grouped.
    pub errors: Arc<ErrorGroups>,
    /// Each capability's state for it.
    pub capabilities: PluginStates,
}

/// The `T` of `Store<T>`: one per instance, dropped with it.
#[allow(missing_debug_implementations)]
pub struct HostState {
    pub(crate) plugin: Arc<PluginContext>,
    pub(crate) request_id: String,
    pub(crate) memory: MemoryLimiter,
    /// Resources of every capability (transactions, spans, leases, WASI
    /// streams).
    pub(crate) table: ResourceTable,
    /// The span of the guest call: host calls open their spans under it.
    pub(crate) trace: opentelemetry::Context,
    /// Each capability's state for this instance.
    pub(crate) instance: InstanceStates,
    /// When the guest call is interrupted (checked at every epoch tick).
    pub(crate) deadline: std::time::Instant,
    /// Keeps the epoch ticker awake while the instance runs (`None` while
    /// a warm instance is parked).
    busy: Option<crate::clock::Busy>,
}

impl HostState {
    /// The state of a new instance of `plugin`, each capability's made by
    /// `capabilities`, to be interrupted at `deadline`.
    pub(crate) fn new(
        capabilities: &Capabilities,
        plugin: Arc<PluginContext>,
        request_id: String,
        trace: opentelemetry::Context,
        deadline: std::time::Instant,
        busy: crate::clock::Busy,
    ) -> Self {
        HostState {
            busy: Some(busy),
            deadline,
            memory: MemoryLimiter::new(plugin.limits.memory.as_u64()),
            instance: capabilities.prepare(&plugin.capabilities, &plugin.limits),
            plugin,
            request_id,
            table: ResourceTable::new(),
            trace,
        }
    }

    /// Readies a warm instance's state for its next request: what belongs
    /// to one request (its id, trace, deadline, each capability's instance
    /// state) is new; the resource table, the WASI context and the memory
    /// limiter (the guest's memory stays) carry over.
    pub(crate) fn renew(
        &mut self,
        capabilities: &Capabilities,
        request_id: String,
        trace: opentelemetry::Context,
        deadline: std::time::Instant,
        busy: crate::clock::Busy,
    ) {
        self.request_id = request_id;
        self.trace = trace;
        self.deadline = deadline;
        self.busy = Some(busy);
        capabilities.renew(
            &self.plugin.capabilities,
            &self.plugin.limits,
            &mut self.instance,
        );
    }

    /// A warm instance is parked: it no longer keeps the ticker awake.
    pub(crate) fn rest(&mut self) {
        self.busy = None;
    }
}

/// Caps linear memory growth and remembers that it did, so a failed call can
/// be reported as a memory limit rather than a generic trap.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    limit: usize,
    pub(crate) exceeded: bool,
    /// The largest size memory was allowed to grow to.
    pub(crate) peak: usize,
}

impl MemoryLimiter {
    pub(crate) fn new(limit: u64) -> Self {
        MemoryLimiter {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            exceeded: false,
            peak: 0,
        }
    }
}

/// Table elements an instance may grow to.
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.exceeded = true;
            return Ok(false);
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

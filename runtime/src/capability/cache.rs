//! `trellis:plugin/cache`: the plugin's keys in the two-tier cache
//! (`backend::cache`), namespaced by the plugin's name so it cannot reach
//! another's. Each call is a `cache.*` client span in the request's trace.

use std::time::Duration;

use bytes::Bytes;
use opentelemetry::KeyValue;
use wasmtime::component::{HasSelf, Linker, Resource};

use super::bindings::cache::{self, EntryOptions, Error, Host, HostLoader, Lookup};
use super::{Capability, HostState, PluginSetup, Runtime};
use crate::backend::cache::{CacheError, CacheService, Fetched, LoadTicket};
use crate::config::Limits;

/// The `cache` capability, over the node's two-tier cache.
#[derive(Debug)]
pub struct Cache {
    service: CacheService,
}

impl Capability for Cache {
    const NAME: &'static str = "cache";
    type Plugin = CacheService;
    type Instance = ();

    async fn start(runtime: &Runtime<'_>) -> Result<Self, String> {
        Ok(Cache {
            service: runtime.backends.cache.clone(),
        })
    }

    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        cache::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)
    }

    async fn configure(&self, _plugin: &PluginSetup<'_>) -> Result<CacheService, String> {
        Ok(self.service.clone())
    }

    fn unconfigured(&self, _plugin: &PluginSetup<'_>) -> CacheService {
        self.service.clone()
    }

    fn prepare(&self, _plugin: &CacheService, _limits: &Limits) {}
}

/// The host side of a guest's `loader` resource: the ticket until it is
/// filled or failed (dropping it fails the load).
#[derive(Debug)]
pub struct GuestLoader {
    ticket: Option<LoadTicket>,
}

fn to_wit(err: CacheError) -> Error {
    match err {
        CacheError::TooLarge(size) => Error::TooLarge(size),
        CacheError::Invalid(message) => Error::Invalid(message),
    }
}

fn ttl(options: &EntryOptions) -> Duration {
    Duration::from_millis(u64::from(options.ttl_ms))
}

impl HostState {
    fn cache_span(&self, op: &'static str, key: &str) -> Option<opentelemetry::Context> {
        self.host_span(op, || {
            vec![
                KeyValue::new("db.system.name", "trellis.cache"),
                KeyValue::new("trellis.cache.key", key.to_string()),
            ]
        })
    }

    fn cache_done<T>(
        &self,
        span: Option<opentelemetry::Context>,
        result: Result<T, CacheError>,
    ) -> Result<T, Error> {
        let error = result.as_ref().err().map(|e| match e {
            CacheError::TooLarge(_) => "too_large",
            CacheError::Invalid(_) => "invalid",
        });
        super::end_span(span, error);
        result.map_err(to_wit)
    }
}

impl Host for HostState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        let span = self.cache_span("cache.get", &key);
        let result = self
            .plugin
            .capabilities
            .cache
            .get(&self.plugin.name, &key)
            .await;
        let result = result.map(|found| found.flatten().map(|v| v.to_vec()));
        Ok(self.cache_done(span, result))
    }

    async fn get_many(
        &mut self,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<Option<Vec<u8>>>, Error>> {
        let span = self.cache_span("cache.get_many", &format!("{} keys", keys.len()));
        let result = self
            .plugin
            .capabilities
            .cache
            .get_many(&self.plugin.name, &keys)
            .await;
        let result =
            result.map(|values| values.into_iter().map(|v| v.map(|v| v.to_vec())).collect());
        Ok(self.cache_done(span, result))
    }

    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
        options: EntryOptions,
    ) -> wasmtime::Result<Result<(), Error>> {
        let span = self.cache_span("cache.set", &key);
        if let Err(err) = self.fits(value.len()) {
            return Ok(self.cache_done(span, Err::<(), _>(err)));
        }
        let result = self
            .plugin
            .capabilities
            .cache
            .set(
                &self.plugin.name,
                &key,
                Some(Bytes::from(value)),
                ttl(&options),
                &options.tags,
            )
            .await
            .map(|_| ());
        Ok(self.cache_done(span, result))
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<Result<(), Error>> {
        let span = self.cache_span("cache.delete", &key);
        let result = self
            .plugin
            .capabilities
            .cache
            .delete(&self.plugin.name, &key)
            .await;
        Ok(self.cache_done(span, result))
    }

    async fn invalidate_tag(&mut self, tag: String) -> wasmtime::Result<Result<(), Error>> {
        let span = self.cache_span("cache.invalidate_tag", &tag);
        let result = self
            .plugin
            .capabilities
            .cache
            .invalidate_tag(&self.plugin.name, &tag)
            .await;
        Ok(self.cache_done(span, result))
    }

    async fn fetch(&mut self, key: String) -> wasmtime::Result<Result<Lookup, Error>> {
        let span = self.cache_span("cache.fetch", &key);
        let result = self
            .plugin
            .capabilities
            .cache
            .fetch(&self.plugin.name, &key)
            .await;
        if let (Some(cx), Ok(found)) = (&span, &result) {
            use opentelemetry::trace::TraceContextExt;
            let outcome = match found {
                Fetched::Hit(_) => "hit",
                Fetched::Absent => "absent",
                Fetched::Load(_) => "load",
            };
            cx.span()
                .set_attribute(KeyValue::new("trellis.cache.result", outcome));
        }
        let lookup = match self.cache_done(span, result) {
            Ok(Fetched::Hit(value)) => Lookup::Hit(value.to_vec()),
            Ok(Fetched::Absent) => Lookup::Absent,
            Ok(Fetched::Load(ticket)) => Lookup::Load(self.table.push(GuestLoader {
                ticket: Some(ticket),
            })?),
            Err(err) => return Ok(Err(err)),
        };
        Ok(Ok(lookup))
    }
}

impl HostState {
    /// Whether a value of `len` bytes is within the plugin's own limit
    /// (`cache.max_value` is checked by the cache).
    fn fits(&self, len: usize) -> Result<(), CacheError> {
        let limit = self.plugin.limits.max_cache_value.as_u64();
        if len as u64 > limit {
            return Err(CacheError::TooLarge(limit));
        }
        Ok(())
    }
}

impl HostLoader for HostState {
    async fn fill(
        &mut self,
        this: Resource<GuestLoader>,
        value: Option<Vec<u8>>,
        options: EntryOptions,
    ) -> wasmtime::Result<Result<(), Error>> {
        let Some(ticket) = self.table.get_mut(&this)?.ticket.take() else {
            return Ok(Err(Error::Invalid(
                "this loader was already filled or failed".into(),
            )));
        };
        let span = self.cache_span("cache.fill", "");
        if let Some(Err(err)) = value.as_ref().map(|v| self.fits(v.len())) {
            ticket.fail();
            return Ok(self.cache_done(span, Err::<(), _>(err)));
        }
        let result = ticket
            .fill(value.map(Bytes::from), ttl(&options), &options.tags)
            .await;
        Ok(self.cache_done(span, result))
    }

    async fn fail(&mut self, this: Resource<GuestLoader>, message: String) -> wasmtime::Result<()> {
        if let Some(ticket) = self.table.get_mut(&this)?.ticket.take() {
            tracing::debug!(plugin = %self.plugin.name, %message, "cache load failed");
            ticket.fail();
        }
        Ok(())
    }

    async fn drop(&mut self, this: Resource<GuestLoader>) -> wasmtime::Result<()> {
        // An unfilled ticket fails as it drops.
        self.table.delete(this)?;
        Ok(())
    }
}

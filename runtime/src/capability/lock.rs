//! `trellis:plugin/lock`: leases with fencing tokens (`backend::lock`), lock
//! names scoped by the plugin's name. A lease handle that the guest drops,
//! or that dies with a trapped instance, is released.

use std::time::Duration;

use opentelemetry::KeyValue;
use wasmtime::component::{HasSelf, Linker, Resource};

use super::bindings::lock::{self, Error, Host, HostLease};
use super::{Capability, HostState, PluginSetup, Runtime};
use crate::backend::lock::{Lease, LockError, LockService};
use crate::config::Limits;

/// The `lock` capability, over the node's lock service.
#[derive(Debug)]
pub struct Lock {
    service: LockService,
}

impl Capability for Lock {
    const NAME: &'static str = "lock";
    type Plugin = LockService;
    type Instance = ();

    async fn start(runtime: &Runtime<'_>) -> Result<Self, String> {
        Ok(Lock {
            service: runtime.backends.locks.clone(),
        })
    }

    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        lock::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)
    }

    async fn configure(&self, _plugin: &PluginSetup<'_>) -> Result<LockService, String> {
        Ok(self.service.clone())
    }

    fn unconfigured(&self, _plugin: &PluginSetup<'_>) -> LockService {
        self.service.clone()
    }

    fn prepare(&self, _plugin: &LockService, _limits: &Limits) {}
}

/// The host side of a guest's `lease` resource.
#[derive(Debug)]
pub struct GuestLease {
    /// `None` once released.
    lease: Option<Lease>,
    token: u64,
    valid_until_ms: u64,
}

fn to_wit(err: LockError) -> Error {
    match err {
        LockError::Timeout => Error::Timeout,
        LockError::Lost => Error::Lost,
        LockError::Unavailable(m) => Error::Unavailable(m),
        LockError::Invalid(m) => Error::Invalid(m),
    }
}

fn kind(err: &LockError) -> &'static str {
    match err {
        LockError::Timeout => "timeout",
        LockError::Lost => "lost",
        LockError::Unavailable(_) => "unavailable",
        LockError::Invalid(_) => "invalid",
    }
}

impl HostState {
    fn lock_span(&self, op: &'static str, name: Option<&str>) -> Option<opentelemetry::Context> {
        self.host_span(op, || {
            name.map(|name| KeyValue::new("trellis.lock.name", name.to_string()))
                .into_iter()
                .collect()
        })
    }
}

impl Host for HostState {
    async fn acquire(
        &mut self,
        name: String,
        ttl_ms: u32,
        wait_ms: u32,
    ) -> wasmtime::Result<Result<Resource<GuestLease>, Error>> {
        let span = self.lock_span("lock.acquire", Some(&name));
        let result = self
            .plugin
            .capabilities
            .lock
            .acquire(
                &self.plugin.name,
                &name,
                Duration::from_millis(u64::from(ttl_ms)),
                Duration::from_millis(u64::from(wait_ms)),
            )
            .await;
        if let (Some(cx), Ok(lease)) = (&span, &result) {
            use opentelemetry::trace::TraceContextExt;
            cx.span().set_attribute(KeyValue::new(
                "trellis.lock.token",
                i64::try_from(lease.token()).unwrap_or(i64::MAX),
            ));
        }
        super::end_span(span, result.as_ref().err().map(kind));
        match result {
            Ok(lease) => Ok(Ok(self.table.push(GuestLease {
                token: lease.token(),
                valid_until_ms: lease.valid_until_ms(),
                lease: Some(lease),
            })?)),
            Err(err) => Ok(Err(to_wit(err))),
        }
    }
}

impl HostLease for HostState {
    async fn fencing_token(&mut self, this: Resource<GuestLease>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&this)?.token)
    }

    async fn valid_until(&mut self, this: Resource<GuestLease>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&this)?.valid_until_ms)
    }

    async fn extend(
        &mut self,
        this: Resource<GuestLease>,
        ttl_ms: u32,
    ) -> wasmtime::Result<Result<(), Error>> {
        let span = self.lock_span("lock.extend", None);
        let guest = self.table.get_mut(&this)?;
        let Some(lease) = guest.lease.as_mut() else {
            super::end_span(span, Some("lost"));
            return Ok(Err(Error::Lost));
        };
        let result = lease.extend(Duration::from_millis(u64::from(ttl_ms))).await;
        if result.is_ok() {
            guest.valid_until_ms = lease.valid_until_ms();
        }
        super::end_span(span, result.as_ref().err().map(kind));
        Ok(result.map_err(to_wit))
    }

    async fn is_held(
        &mut self,
        this: Resource<GuestLease>,
    ) -> wasmtime::Result<Result<bool, Error>> {
        let Some(lease) = self.table.get(&this)?.lease.as_ref() else {
            return Ok(Ok(false));
        };
        Ok(lease.is_held().await.map_err(to_wit))
    }

    async fn release(&mut self, this: Resource<GuestLease>) -> wasmtime::Result<Result<(), Error>> {
        let span = self.lock_span("lock.release", None);
        let Some(lease) = self.table.get_mut(&this)?.lease.take() else {
            super::end_span(span, Some("lost"));
            return Ok(Err(Error::Lost));
        };
        let result = lease.release().await;
        super::end_span(span, result.as_ref().err().map(kind));
        Ok(result.map_err(to_wit))
    }

    async fn drop(&mut self, this: Resource<GuestLease>) -> wasmtime::Result<()> {
        // An unreleased lease releases itself as it drops.
        self.table.delete(this)?;
        Ok(())
    }
}

//! The standard `wasi:keyvalue` interfaces (`store`, `atomics`, `batch`
//! of 0.2.0-draft, the version wasmtime ships and `wasmtime serve -S
//! keyvalue` links), for components written for `wasmtime serve` or Spin.
//! Values live in `backend::keyvalue`: Redis when configured, else in
//! process. Each plugin has its own buckets; `default` (or the empty
//! identifier) always opens, other names only when its
//! `keyvalue_stores` lists them. Needs the `keyvalue` grant. Each call
//! is a `keyvalue.*` client span in the request's trace.

use bytes::Bytes;
use opentelemetry::KeyValue;
use wasmtime::component::{HasSelf, Linker, Resource};

use super::{Capability, HostState, PluginSetup, Runtime};
use crate::backend::keyvalue::{BucketId, KeyValueService, KvError};
use crate::config::Limits;

#[allow(missing_docs, missing_debug_implementations)]
mod generated {
    wasmtime::component::bindgen!({
        path: "wit/wasi-keyvalue",
        world: "imports",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": super::Bucket,
        },
    });
}

use generated::wasi::keyvalue::store::{Error, KeyResponse};
use generated::wasi::keyvalue::{atomics, batch, store};

/// The bucket every plugin has.
pub const DEFAULT_STORE: &str = "default";

/// The `keyvalue` capability, over the node's key-value store.
#[derive(Debug)]
pub struct Buckets {
    service: KeyValueService,
}

/// A plugin's view of the store: the service and the bucket names it may
/// open.
#[derive(Debug, Clone)]
pub struct PluginKeyValue {
    service: KeyValueService,
    stores: Vec<String>,
}

/// The host side of an open `bucket`.
#[derive(Debug)]
pub struct Bucket {
    id: BucketId,
    name: String,
}

impl Capability for Buckets {
    const NAME: &'static str = "keyvalue";
    type Plugin = PluginKeyValue;
    type Instance = ();

    async fn start(runtime: &Runtime<'_>) -> Result<Self, String> {
        Ok(Buckets {
            service: runtime.backends.keyvalue.clone(),
        })
    }

    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        store::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)?;
        atomics::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)?;
        batch::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)
    }

    async fn configure(&self, plugin: &PluginSetup<'_>) -> Result<PluginKeyValue, String> {
        Ok(self.unconfigured(plugin))
    }

    fn unconfigured(&self, plugin: &PluginSetup<'_>) -> PluginKeyValue {
        PluginKeyValue {
            service: self.service.clone(),
            stores: plugin.config.keyvalue_stores.clone(),
        }
    }

    fn prepare(&self, _plugin: &PluginKeyValue, _limits: &Limits) {}
}

impl HostState {
    fn keyvalue(&self) -> &KeyValueService {
        &self.plugin.capabilities.keyvalue.service
    }

    fn keyvalue_span(&self, op: &'static str, bucket: &str) -> Option<opentelemetry::Context> {
        self.host_span(op, || {
            vec![
                KeyValue::new("db.system.name", "trellis.keyvalue"),
                KeyValue::new("db.namespace", bucket.to_string()),
            ]
        })
    }

    /// Runs one store call on bucket `this` under its span, and turns its
    /// error into the WIT's.
    async fn on_bucket<T, F>(
        &mut self,
        op: &'static str,
        this: &Resource<Bucket>,
        call: impl FnOnce(KeyValueService, BucketId) -> F,
    ) -> wasmtime::Result<Result<T, Error>>
    where
        F: Future<Output = Result<T, KvError>>,
    {
        let bucket = self.table.get(this)?;
        let span = self.keyvalue_span(op, &bucket.name);
        let result = call(self.keyvalue().clone(), bucket.id.clone()).await;
        let error = result.as_ref().err().map(ToString::to_string);
        super::end_span(span, error.as_deref());
        Ok(result.map_err(|e| Error::Other(e.to_string())))
    }

    /// Whether `len` bytes fit the plugin's value limit (the cache's).
    fn keyvalue_fits(&self, len: usize) -> Result<(), Error> {
        let limit = self
            .plugin
            .limits
            .max_cache_value
            .as_u64()
            .min(self.keyvalue().max_value());
        if len as u64 > limit {
            return Err(Error::Other(format!(
                "the value is larger than the limit of {limit} bytes \
                 (cache.max_value, limits.max_cache_value)"
            )));
        }
        Ok(())
    }
}

impl store::Host for HostState {
    async fn open(
        &mut self,
        identifier: String,
    ) -> wasmtime::Result<Result<Resource<Bucket>, Error>> {
        let name = if identifier.is_empty() {
            DEFAULT_STORE
        } else {
            identifier.as_str()
        };
        let plugin = &self.plugin.capabilities.keyvalue;
        if name != DEFAULT_STORE && !plugin.stores.iter().any(|s| s == name) {
            return Ok(Err(Error::NoSuchStore));
        }
        let id = plugin.service.bucket(&self.plugin.name, name);
        let bucket = Bucket {
            id,
            name: name.to_string(),
        };
        Ok(Ok(self.table.push(bucket)?))
    }
}

impl store::HostBucket for HostState {
    async fn get(
        &mut self,
        this: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        let found = self
            .on_bucket("keyvalue.get", &this, |kv, id| async move {
                kv.get(&id, &key).await
            })
            .await?;
        Ok(found.map(|v| v.map(|v| v.to_vec())))
    }

    async fn set(
        &mut self,
        this: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        if let Err(err) = self.keyvalue_fits(value.len()) {
            return Ok(Err(err));
        }
        self.on_bucket("keyvalue.set", &this, |kv, id| async move {
            kv.set(&id, &key, Bytes::from(value)).await
        })
        .await
    }

    async fn delete(
        &mut self,
        this: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        self.on_bucket("keyvalue.delete", &this, |kv, id| async move {
            kv.delete(&id, &key).await
        })
        .await
    }

    async fn exists(
        &mut self,
        this: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        self.on_bucket("keyvalue.exists", &this, |kv, id| async move {
            kv.exists(&id, &key).await
        })
        .await
    }

    async fn list_keys(
        &mut self,
        this: Resource<Bucket>,
        cursor: Option<u64>,
    ) -> wasmtime::Result<Result<KeyResponse, Error>> {
        let page = self
            .on_bucket("keyvalue.list_keys", &this, |kv, id| async move {
                kv.list(&id, cursor).await
            })
            .await?;
        Ok(page.map(|(keys, cursor)| KeyResponse { keys, cursor }))
    }

    async fn drop(&mut self, this: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl atomics::Host for HostState {
    async fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: u64,
    ) -> wasmtime::Result<Result<u64, Error>> {
        self.on_bucket("keyvalue.increment", &bucket, |kv, id| async move {
            kv.increment(&id, &key, delta).await
        })
        .await
    }
}

impl batch::Host for HostState {
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<Option<(String, Vec<u8>)>>, Error>> {
        let found = self
            .on_bucket("keyvalue.get_many", &bucket, |kv, id| async move {
                let values = kv.get_many(&id, &keys).await?;
                Ok(keys
                    .into_iter()
                    .zip(values)
                    .map(|(key, value)| value.map(|v| (key, v.to_vec())))
                    .collect())
            })
            .await?;
        Ok(found)
    }

    async fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<(), Error>> {
        for (_, value) in &key_values {
            if let Err(err) = self.keyvalue_fits(value.len()) {
                return Ok(Err(err));
            }
        }
        let pairs = key_values
            .into_iter()
            .map(|(k, v)| (k, Bytes::from(v)))
            .collect();
        self.on_bucket("keyvalue.set_many", &bucket, |kv, id| async move {
            kv.set_many(&id, pairs).await
        })
        .await
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<(), Error>> {
        self.on_bucket("keyvalue.delete_many", &bucket, |kv, id| async move {
            kv.delete_many(&id, keys).await
        })
        .await
    }
}

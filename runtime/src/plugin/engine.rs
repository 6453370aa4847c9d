//! The one wasmtime engine: component model, pooling allocator tuned as
//! `docs/performance.md` measured, epoch interruption driven by a ticker thread,
//! and the on-disk compile cache.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{
    Cache, CacheConfig, Config, Enabled, Engine, InstanceAllocationStrategy,
    PoolingAllocationConfig,
};

use crate::clock::Activity;
use crate::config::EngineConfig;

/// Builds the engine, and the compile cache when `cache_dir` is set (kept to
/// read its hit and miss counts). `max_memory` is the largest memory cap of
/// any plugin.
pub fn build(
    config: &EngineConfig,
    max_memory: u64,
    cache_dir: Option<&Path>,
) -> wasmtime::Result<(Engine, Option<Cache>)> {
    let mut wasm = Config::new();
    wasm.wasm_component_model(true)
        .epoch_interruption(true)
        .memory_init_cow(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling(
            config.max_instances,
            max_memory,
        )));
    let cache = match cache_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            let mut cache_config = CacheConfig::new();
            cache_config.with_directory(dir);
            Some(Cache::new(cache_config)?)
        }
        None => None,
    };
    wasm.cache(cache.clone());
    Ok((Engine::new(&wasm)?, cache))
}

/// Pool sizes for `instances` component instances. A Rust wasip2 component
/// has a handful of core instances (the module plus canonical-ABI shims), one
/// memory and a few tables. The keep-resident settings avoid the
/// `madvise(DONTNEED)` TLB shootdowns that dominate slot reuse on a VM.
fn pooling(instances: u32, max_memory: u64) -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(8))
        .total_memories(instances.saturating_mul(2))
        .total_tables(instances.saturating_mul(4))
        .total_stacks(instances)
        .max_memory_size(usize::try_from(max_memory).unwrap_or(usize::MAX))
        .pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(2 << 20)
        .table_keep_resident(64 << 10)
        .async_stack_keep_resident(1 << 20);
    pool
}

/// How often the epoch ticker looks whether a guest runs while none did at
/// its last look.
const IDLE_LOOK: Duration = Duration::from_millis(20);

/// Looks with no guest begun since the one before, after which the ticker
/// sleeps until one begins.
const LOOKS_BEFORE_SLEEP: u32 = 50;

/// Advances the engine's epoch every `tick` while a guest runs (a store
/// exists: `activity` is busy), until the engine is dropped. A running
/// guest yields (and has its deadline checked) at each tick. With no guest
/// the thread looks every 20 ms whether one began, rather than being woken
/// by each: at low load that wake-up was a system call in every request
/// and two context switches of this thread. So a guest that begins while
/// none runs first yields within 20 ms and a tick, and every tick after.
/// After a second in which no guest began the thread sleeps until one begins
/// (that guest wakes it), so a node at rest does not wake 50 times a
/// second either.
pub fn start_epoch_ticker(
    engine: &Engine,
    tick: Duration,
    activity: Arc<Activity>,
) -> std::io::Result<()> {
    let weak = engine.weak();
    let idle_look = tick.max(IDLE_LOOK);
    std::thread::Builder::new()
        .name("trellis-epoch".into())
        .spawn(move || {
            let mut ticking = false;
            let mut idle_looks = 0;
            let mut last_begun = activity.begun();
            loop {
                std::thread::sleep(if ticking { tick } else { idle_look });
                let Some(engine) = weak.upgrade() else { break };
                let busy = activity.is_busy();
                // A guest seen at the last look has run a tick since.
                if ticking && busy {
                    engine.increment_epoch();
                }
                drop(engine);
                ticking = busy;
                let begun = activity.begun();
                idle_looks = if busy || begun != last_begun {
                    0
                } else {
                    idle_looks + 1
                };
                last_begun = begun;
                // Woken by a guest, the thread looks for a second again
                // before the next sleep; by the timeout, it sleeps on.
                if idle_looks >= LOOKS_BEFORE_SLEEP {
                    activity.sleep_until_work(Duration::from_secs(1));
                }
            }
        })
        .map(drop)
}

//! The cache and lock backends as the capabilities call them: a get that
//! hits the in-process tier (L1), a get that misses L1 and hits Redis (L2),
//! and a lock acquire + release round trip, in process and on Redis.
//! Redis is the machine's (`TRELLIS_BENCH_REDIS_URL`, default
//! `redis://127.0.0.1:6379`); without it the Redis cases are skipped.
//! Run: `cargo bench -p trellis-benches --bench cache_lock`.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use trellis::backend::cache::CacheService;
use trellis::backend::lock::LockService;
use trellis::backend::redis::Redis;
use trellis::config::{CacheConfig, LockConfig, RedisConfig};
use trellis::monitor::Metrics;

fn cache_lock(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let metrics = Metrics::new();
    let value = bytes::Bytes::from(vec![7u8; 256]);
    let ttl = Duration::from_secs(600);

    let embedded = runtime.block_on(CacheService::start(
        &CacheConfig::default(),
        None,
        metrics.cache_stats(),
    ));
    runtime
        .block_on(embedded.set("bench", "k", Some(value.clone()), ttl, &[]))
        .expect("set");
    c.bench_function("cache get, L1 hit (256 B)", |b| {
        b.to_async(&runtime)
            .iter(|| async { embedded.get("bench", "k").await.expect("get") });
    });
    let locks = LockService::new(&LockConfig::default(), None, metrics.lock_stats());
    lock_round_trip(c, &runtime, &locks, "lock acquire + release, in process");

    let config = RedisConfig {
        url: std::env::var("TRELLIS_BENCH_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        namespace: format!("bench-{}", std::process::id()),
        command_timeout: Duration::from_secs(1),
        required: true,
        ca_file: None,
    };
    let Ok(redis) = runtime.block_on(Redis::connect(&config)) else {
        eprintln!("no Redis: skipping the L2 and Redis lock benchmarks");
        return;
    };
    if !redis.is_up() {
        eprintln!("Redis does not answer: skipping the L2 and Redis lock benchmarks");
        return;
    }
    let shared = runtime.block_on(CacheService::start(
        &CacheConfig::default(),
        Some(redis.clone()),
        metrics.cache_stats(),
    ));
    runtime
        .block_on(shared.set("bench", "k", Some(value), ttl, &[]))
        .expect("set");
    c.bench_function("cache get, L1 miss + L2 hit (Redis, 256 B)", |b| {
        b.to_async(&runtime).iter(|| async {
            // Drop the in-process copy so the read goes to Redis.
            shared.flush_l1();
            shared.get("bench", "k").await.expect("get")
        });
    });
    let locks = LockService::new(&LockConfig::default(), Some(redis), metrics.lock_stats());
    lock_round_trip(c, &runtime, &locks, "lock acquire + release, Redis");
}

/// Acquire and release one free lock, over and over.
fn lock_round_trip(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    locks: &LockService,
    name: &str,
) {
    c.bench_function(name, |b| {
        b.to_async(runtime).iter(|| async {
            let lease = locks
                .acquire("bench", "l", Duration::from_secs(5), Duration::ZERO)
                .await
                .expect("free");
            lease.release().await.expect("released");
        });
    });
}

criterion_group!(benches, cache_lock);
criterion_main!(benches);

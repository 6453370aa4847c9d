//! The `lock` capability through the `kv` test plugin: mutual exclusion
//! across tasks and processes, expiry, fencing under a frozen holder, and
//! the Redis store's compare-and-delete.

use std::time::Duration;

use trellis_tests::TestServer;
use trellis_tests::node::ChildNode;
use trellis_tests::pg::Namespace;
use trellis_tests::redis;

use trellis_tests::kv::{kv_toml, post};

/// Runs `per_client` increments of counter `name` from each of `clients`,
/// 8 tasks per client, and checks that no update was lost and that the
/// fencing tokens rise with the counter.
async fn increment_from(clients: &[&TestServer], name: &str, total: usize) {
    let tasks_per_client = 8;
    let tasks = clients.len() * tasks_per_client;
    let mut handles = Vec::new();
    for (i, client) in clients.iter().enumerate() {
        for t in 0..tasks_per_client {
            let client = TestServer::at(client.addr());
            let name = name.to_string();
            let n = total / tasks + usize::from(i * tasks_per_client + t < total % tasks);
            handles.push(tokio::spawn(async move {
                let mut seen = Vec::with_capacity(n);
                for _ in 0..n {
                    let reply =
                        post(&client, &format!("/locks/{name}/increment?wait_ms=20000")).await;
                    assert_eq!(reply.status, 200, "{}", reply.text());
                    let body = reply.json();
                    seen.push((
                        body["n"].as_u64().expect("n"),
                        body["token"].as_u64().expect("token"),
                    ));
                }
                seen
            }));
        }
    }
    let mut seen = Vec::with_capacity(total);
    for handle in handles {
        seen.extend(handle.await.expect("joined"));
    }
    seen.sort_unstable();
    let counts: Vec<u64> = seen.iter().map(|(n, _)| *n).collect();
    let expected: Vec<u64> = (1..=total as u64).collect();
    assert_eq!(counts, expected, "a lost update (or a double count)");
    assert!(
        seen.windows(2).all(|w| w[0].1 < w[1].1),
        "fencing tokens do not rise with the counter"
    );
    let counter = clients[0]
        .get(&format!("/locks/{name}/counter"))
        .await
        .json();
    assert_eq!(counter["n"], total as u64);
}

/// Polls until lock `name` is held by someone else: a try that times out
/// with the typed error (a try that gets it releases it at once).
async fn wait_until_held(server: &TestServer, name: &str) {
    let started = std::time::Instant::now();
    loop {
        let reply = post(server, &format!("/locks/{name}/try?wait_ms=20")).await;
        if reply.status == 503 {
            reply.assert_problem(503, "lock_timeout");
            return;
        }
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "lock {name} was never taken"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_locks_exclude_expire_and_extend() {
    let server = TestServer::start(&kv_toml("")).await;
    increment_from(&[&server], "c", 400).await;

    // A holder that stops renewing loses the lock after its ttl.
    let held = post(&server, "/locks/h/hold?ttl_ms=100&hold_ms=300")
        .await
        .json();
    assert_eq!(held["held_after"], false, "{held}");
    let next = post(&server, "/locks/h/try").await.json();
    assert!(next["token"].as_u64() > held["token"].as_u64());
    // While held, others time out with a typed error. (The holder waits to
    // acquire, so the probes cannot starve it.)
    let holder = {
        let client = TestServer::at(server.addr());
        tokio::spawn(async move {
            post(
                &client,
                "/locks/busy/fenced?ttl_ms=2000&hold_ms=800&wait_ms=5000",
            )
            .await
        })
    };
    wait_until_held(&server, "busy").await;
    let held = holder.await.expect("joined");
    assert_eq!(held.json()["accepted"], true, "{}", held.text());
    let extended = post(&server, "/locks/e/extend?ttl_ms=1000").await.json();
    assert_eq!(extended["extended"], true);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a node for the multi-process lock tests, run as a child process"]
async fn node_child() {
    trellis_tests::node::serve_child().await;
}

/// Two processes × 8 tasks, 1,000 increments of one counter in the shared
/// PostgreSQL under one Redis lock: no lost update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_redis_lock() {
    let ns = Namespace::new().await;
    let toml = kv_toml(&format!(
        "{}{}",
        ns.toml(),
        redis::toml(&redis::url(), &redis::namespace())
    ));
    let a = TestServer::start(&toml).await;
    let b = ChildNode::start("locks::node_child", &toml);
    increment_from(&[&a, &b.server], "shared", 1000).await;
    drop(b);
    a.shutdown().await;
    ns.drop_all().await;
}

/// A holder frozen with SIGSTOP past its ttl, then resumed, tries a fenced
/// write after another holder wrote: the stale write is rejected and the
/// register never goes back to a lower token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_holder_cannot_write_with_its_stale_token() {
    let ns = Namespace::new().await;
    let toml = kv_toml(&format!(
        "{}{}",
        ns.toml(),
        redis::toml(&redis::url(), &redis::namespace())
    ));
    let b = TestServer::start(&toml).await;
    let a = ChildNode::start("locks::node_child", &toml);

    // A takes the lease for 400 ms and means to write after 1 s.
    let stale = {
        let client = TestServer::at(a.server.addr());
        tokio::spawn(async move {
            post(&client, "/locks/reg/fenced?ttl_ms=400&hold_ms=1000&value=A").await
        })
    };
    wait_until_held(&b, "reg").await;
    a.signal("STOP");
    // B waits out A's lease and writes with a newer token.
    let fresh = post(&b, "/locks/reg/fenced?ttl_ms=5000&wait_ms=5000&value=B")
        .await
        .json();
    assert_eq!(fresh["accepted"], true, "{fresh}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.signal("CONT");
    let stale = stale.await.expect("joined");
    assert_eq!(stale.status, 200, "{}", stale.text());
    let stale = stale.json();
    assert!(stale["token"].as_u64() < fresh["token"].as_u64());
    assert_eq!(
        stale["accepted"], false,
        "the stale holder's write went through"
    );
    let register = b.get("/locks/reg/register").await.json();
    assert_eq!(register["value"], "B");
    assert_eq!(register["fence"], fresh["token"]);
    drop(a);
    b.shutdown().await;
    ns.drop_all().await;
}

/// The Redis store directly: expiry hands the lock over with a larger
/// token, and the old holder can neither release nor extend it.
#[tokio::test]
async fn redis_leases_refuse_a_non_owner() {
    let config = trellis::config::RedisConfig {
        url: redis::url(),
        namespace: redis::namespace(),
        command_timeout: Duration::from_millis(500),
        required: true,
        ca_file: None,
    };
    let client = trellis::backend::redis::Redis::connect(&config)
        .await
        .expect("redis");
    let locks = trellis::backend::lock::LockService::new(
        &trellis::config::LockConfig::default(),
        Some(client),
        trellis::monitor::Metrics::new().lock_stats(),
    );
    let ms = Duration::from_millis;
    let mut first = locks.acquire("p", "x", ms(100), ms(0)).await.expect("free");
    assert!(matches!(
        locks.acquire("p", "x", ms(100), ms(0)).await,
        Err(trellis::backend::lock::LockError::Timeout)
    ));
    tokio::time::sleep(ms(150)).await;
    let second = locks
        .acquire("p", "x", ms(5000), ms(0))
        .await
        .expect("expired");
    assert!(second.token() > first.token());
    assert_eq!(first.is_held().await, Ok(false));
    assert_eq!(
        first.extend(ms(1000)).await,
        Err(trellis::backend::lock::LockError::Lost)
    );
    assert_eq!(
        first.release().await,
        Err(trellis::backend::lock::LockError::Lost)
    );
    assert_eq!(second.is_held().await, Ok(true));
    second.release().await.expect("the owner releases");
    let third = locks
        .acquire("p", "x", ms(100), ms(0))
        .await
        .expect("released");
    assert!(third.token() > 0);
}

/// An acquire that times out while Redis is frozen still runs there when
/// Redis resumes; its clean-up removes that lease, so the lock is free
/// again at once instead of after the ttl nobody holds it for.
#[tokio::test]
async fn a_frozen_redis_leaves_no_orphaned_lease() {
    use trellis::backend::lock::{LockError, LockService};
    let ms = Duration::from_millis;
    let private = redis::PrivateRedis::start();
    let config = trellis::config::RedisConfig {
        url: private.url(),
        namespace: redis::namespace(),
        command_timeout: ms(300),
        required: true,
        ca_file: None,
    };
    let client = trellis::backend::redis::Redis::connect(&config)
        .await
        .expect("redis");
    let locks = LockService::new(
        &trellis::config::LockConfig::default(),
        Some(client),
        trellis::monitor::Metrics::new().lock_stats(),
    );
    let warm = locks.acquire("p", "warm", ms(1000), ms(0)).await;
    warm.expect("Redis answers")
        .release()
        .await
        .expect("released");

    private.freeze();
    let frozen = locks
        .acquire("p", "x", Duration::from_secs(60), ms(0))
        .await;
    assert!(
        matches!(frozen, Err(LockError::Unavailable(_))),
        "{frozen:?}"
    );
    private.thaw();
    // The frozen attempt's lease would hold the lock for 60 s.
    let lease = locks
        .acquire("p", "x", ms(1000), Duration::from_secs(5))
        .await
        .expect("no lease left behind by the attempt that timed out");
    assert!(lease.token() > 0);
}

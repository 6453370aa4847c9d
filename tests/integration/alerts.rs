//! Alerting end to end: a rule on a test route goes pending → firing →
//! resolved under real traffic, and a webhook on loopback receives one
//! notification per transition, the first after a failed delivery.

use std::time::{Duration, Instant};

use http::Method;
use trellis_tests::webhook::Webhook;
use trellis_tests::{TestServer, guest};

/// `[alerts]` evaluating every 100 ms and notifying `hook`, and a rule
/// `name` with `expr` (more keys of the rule may follow).
fn alerting(hook: &Webhook, name: &str, expr: &str) -> String {
    format!(
        "[alerts]\nevaluation_interval = \"100ms\"\nwebhooks = [{:?}]\n\n\
         [[alerts.rules]]\nname = {name:?}\nexpr = {expr:?}\n",
        hook.url()
    )
}

async fn state(server: &TestServer) -> Option<String> {
    let body = server.get("/api/v1/monitoring/alerts").await.json();
    body["alerts"][0]["state"].as_str().map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_fires_and_resolves_with_one_notification_each() {
    let hook = Webhook::start(1).await;
    let server = TestServer::start(&format!(
        r#"{alerting}
for = "1s"
severity = "critical"
labels = {{ team = "api" }}
summary = "sleep is slow"

[plugins.misbehave]
path = {misbehave:?}
grants = ["config", "sql"]
"#,
        alerting = alerting(
            &hook,
            "SleepSlow",
            r#"route_p95_ms{route="/misbehave/sleep"}[10s] > 150"#
        ),
        misbehave = guest("misbehave"),
    ))
    .await;
    assert_eq!(state(&server).await, None, "nothing before traffic");

    // Slow requests until it fires; it is pending for the first second.
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        assert_eq!(server.get("/misbehave/sleep?ms=250").await.status, 200);
        let now = state(&server).await;
        if seen.last() != Some(&now) {
            seen.push(now.clone());
        }
        if now.as_deref() == Some("firing") {
            break;
        }
    }
    assert!(
        seen.contains(&Some("pending".into())) && seen.last() == Some(&Some("firing".into())),
        "{seen:?}"
    );

    // Fast requests bring p95 under the threshold: resolved.
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && state(&server).await.as_deref() != Some("resolved") {
        for _ in 0..50 {
            server.get("/misbehave/sleep?ms=0").await;
        }
    }
    assert_eq!(state(&server).await.as_deref(), Some("resolved"));

    let received = hook.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(received.len(), 2, "{received:?}");
    assert_eq!(received[0]["status"], "firing");
    assert_eq!(received[1]["status"], "resolved");
    let labels = &received[0]["alert"]["labels"];
    assert_eq!(labels["alertname"], "SleepSlow");
    assert_eq!(labels["team"], "api");
    assert_eq!(labels["severity"], "critical");
    assert_eq!(labels["route"], "/misbehave/sleep");
    assert_eq!(received[0]["summary"], "sleep is slow");
    assert!(
        received[0]["alert"]["value"]
            .as_f64()
            .is_some_and(|v| v > 150.0)
    );
    // The first delivery failed and was retried; nothing was sent twice.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hook.attempts(), 3);
    server.shutdown().await;
}

#[test]
fn an_invalid_rule_is_a_config_error_naming_its_key() {
    let err = trellis::Config::parse(
        "[[alerts.rules]]\nname = \"x\"\nexpr = \"route_p42_ms > 1\"\n",
        std::path::Path::new("t.toml"),
        std::iter::empty(),
    )
    .expect_err("an unknown signal is refused");
    let message = err.to_string();
    assert!(message.contains("alerts.rules[0].expr"), "{message}");
    assert!(
        message.contains("unknown signal `route_p42_ms`"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_of_a_cluster_evaluates_and_another_takes_over() {
    let namespace = trellis_tests::pg::Namespace::new().await;
    let hook = Webhook::start(0).await;
    let toml = format!(
        "{}\n{}",
        namespace.toml(),
        alerting(&hook, "Always", "instances_in_use >= 0")
    );
    let nodes = [
        TestServer::start(&toml).await,
        TestServer::start(&toml).await,
    ];
    assert_eq!(hook.wait_for(1, Duration::from_secs(10)).await.len(), 1);
    // Both evaluate every 100 ms; only one may notify.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(hook.wait_for(2, Duration::ZERO).await.len(), 1);
    let mut evaluating = Vec::new();
    for node in &nodes {
        let body = node.get("/api/v1/monitoring/alerts").await.json();
        evaluating.push(body["evaluating"] == true);
    }
    assert_eq!(
        evaluating.iter().filter(|e| **e).count(),
        1,
        "{evaluating:?}"
    );

    // The evaluating node stops; the other takes the role.
    let [first, second] = nodes;
    let (leader, other) = if evaluating[0] {
        (first, second)
    } else {
        (second, first)
    };
    // The other node lists the states the evaluating one stored.
    let listed = other.get("/api/v1/monitoring/alerts").await.json();
    assert_eq!(listed["alerts"][0]["state"], "firing", "{listed}");
    // A silence made on the other node reaches the evaluating one.
    let created = other
        .send(
            Method::POST,
            "/api/v1/monitoring/silences",
            &[("content-type", "application/json")],
            r#"{"matchers": {"alertname": "Always"}, "duration": "1h"}"#,
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = leader.get("/api/v1/monitoring/alerts").await.json();
        if body["alerts"][0]["silenced"] == true {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the silence never applied: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    leader.shutdown().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = other.get("/api/v1/monitoring/alerts").await.json();
        if body["evaluating"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "no node took over: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // It continues from the stored states: still firing, not announced
    // again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let body = other.get("/api/v1/monitoring/alerts").await.json();
    assert_eq!(body["alerts"][0]["state"], "firing", "{body}");
    assert_eq!(hook.wait_for(2, Duration::ZERO).await.len(), 1);
    other.shutdown().await;
    namespace.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silence_holds_notifications_back_until_it_ends() {
    let hook = Webhook::start(0).await;
    let server = TestServer::start(&format!(
        "{}for = \"1s\"\n",
        alerting(&hook, "Always", "instances_in_use >= 0")
    ))
    .await;
    let json = [("content-type", "application/json")];
    let created = server
        .send(
            Method::POST,
            "/api/v1/monitoring/silences",
            &json,
            r#"{"matchers": {"alertname": "Always"}, "duration": "3s", "comment": "deploy"}"#,
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["id"].as_str().expect("an id").to_string();
    assert_eq!(
        created.header("location"),
        Some(format!("/api/v1/monitoring/silences/{id}").as_str())
    );
    let listed = server.get("/api/v1/monitoring/silences").await.json();
    assert_eq!(listed["silences"][0]["comment"], "deploy");

    // It fires while silenced: listed as such, nobody told.
    let deadline = Instant::now() + Duration::from_secs(5);
    while state(&server).await.as_deref() != Some("firing") {
        assert!(Instant::now() < deadline, "it never fired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let alerts = server.get("/api/v1/monitoring/alerts").await.json();
    assert_eq!(alerts["alerts"][0]["silenced"], true);
    assert!(
        hook.wait_for(1, Duration::from_millis(200))
            .await
            .is_empty()
    );

    // The silence ends: the held-back firing is announced, once.
    let received = hook.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0]["status"], "firing");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hook.wait_for(2, Duration::ZERO).await.len(), 1);
    let listed = server.get("/api/v1/monitoring/silences").await.json();
    assert_eq!(listed["silences"], serde_json::json!([]));

    // Unhappy paths.
    server
        .send(
            Method::DELETE,
            &format!("/api/v1/monitoring/silences/{id}"),
            &[],
            "",
        )
        .await
        .assert_problem(404, "not_found");
    for bad in [
        r#"{"matchers": {}, "duration": "1h"}"#,
        r#"{"matchers": {"alertname": "Always"}, "duration": "90days"}"#,
        r#"{"matchers": {"alertname": "Always"}}"#,
        "not json",
    ] {
        server
            .send(Method::POST, "/api/v1/monitoring/silences", &json, bad)
            .await
            .assert_problem(400, "bad_request");
    }
    server
        .send(Method::PUT, "/api/v1/monitoring/silences", &json, "{}")
        .await
        .assert_problem(405, "method_not_allowed");
    server.shutdown().await;
}

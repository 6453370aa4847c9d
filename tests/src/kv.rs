//! The `kv` test plugin (`plugins/kv`), every route a call of the `cache`
//! or `lock` capability: its config, and reading `/metrics`.

use http::Method;

use crate::{Reply, TestServer, guest};

/// A server with the `kv` test plugin, and `extra` config.
pub fn kv_toml(extra: &str) -> String {
    format!(
        "{extra}\n[plugins.kv]\npath = {:?}\ngrants = [\"cache\", \"lock\", \"sql\"]\n",
        guest("kv")
    )
}

/// `POST path` with no body.
pub async fn post(server: &TestServer, path: &str) -> Reply {
    server.send(Method::POST, path, &[], "").await
}

/// The value of a counter or gauge line of `/metrics`, summed over labels
/// that contain `labels`.
pub async fn metric(server: &TestServer, name: &str, labels: &str) -> f64 {
    let text = server.get("/metrics").await.text();
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(labels))
        .filter(|l| l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

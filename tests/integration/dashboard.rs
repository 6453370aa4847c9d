//! The dashboard in headless Chromium: the page loads from the runtime
//! alone (no external assets), its charts and plugin table have data after
//! some traffic, and no script error happened. Skipped, with a notice, where
//! Chromium is not installed (`.ci/run` installs Debian's `chromium`).

use std::path::PathBuf;
use std::time::Duration;

use trellis_tests::{TestServer, fresh_dir};

fn chromium() -> Option<PathBuf> {
    std::env::var_os("TRELLIS_TEST_CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("/usr/bin/chromium")))
        .filter(|p| p.exists())
}

/// The page's DOM after its scripts ran for a few (virtual) seconds.
async fn rendered(browser: &PathBuf, url: &str) -> String {
    let profile = fresh_dir();
    let output = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--virtual-time-budget=8000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("chromium finishes")
    .expect("chromium runs");
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        !dom.is_empty(),
        "chromium printed no DOM: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    dom
}

fn attribute<'a>(dom: &'a str, element: &str, name: &str) -> Option<&'a str> {
    let start = dom.find(&format!("id=\"{element}\""))?;
    let tag_start = dom[..start].rfind('<')?;
    let tag = &dom[tag_start..tag_start + dom[tag_start..].find('>')?];
    let value = &tag[tag.find(&format!("{name}=\""))? + name.len() + 2..];
    value.split('"').next()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_live_data_without_script_errors() {
    let server = TestServer::start("").await;
    for _ in 0..30 {
        assert_eq!(server.get("/hello").await.status, 200);
    }
    // The page itself, with or without a browser: self-contained, under
    // its content security policy, GET only.
    let page = server.get("/dashboard").await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("<title>Trellis dashboard</title>"));
    assert!(!page.text().contains("http://") && !page.text().contains("https://"));
    let policy = page.header("content-security-policy").expect("a CSP");
    assert!(policy.starts_with("default-src 'none'"), "{policy}");
    let post = server.send(http::Method::POST, "/dashboard", &[], "").await;
    assert_eq!(post.status, 405);

    let Some(browser) = chromium() else {
        eprintln!("notice: chromium not installed; skipping the dashboard browser test");
        server.shutdown().await;
        return;
    };

    let dom = rendered(&browser, &format!("http://{}/dashboard", server.addr())).await;
    let body = &dom[dom.find("<body").expect("a body")..];
    assert!(
        body.contains("data-state=\"ready\""),
        "never got data: {body}"
    );
    assert!(!body.contains("data-errors"), "script errors: {body}");
    let points: usize = attribute(&dom, "chart-rps", "data-points")
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    assert!(points >= 1, "the throughput chart is empty: {dom}");
    assert!(dom.contains("<td>hello</td>"), "no hello row: {dom}");
    server.shutdown().await;
}

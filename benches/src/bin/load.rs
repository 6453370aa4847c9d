//! `trellis-load`: an HTTP load generator for loopback targets (see
//! [`trellis_benches::load`] for the modes).
//!
//! `trellis-load http://127.0.0.1:8080/hello` loads one URL; with
//! `--scenario benches/scenarios/mixed.toml` the URL is the base for the
//! scenario's paths. `--rate R` runs open loop at R requests/s; without it
//! each connection sends its next request when the previous one answers.
//! `--warmup` (not recorded), then `--duration`, or until `--max-requests`.
//! With `--server-pid`, the server's CPU time (user + system, from `/proc`)
//! over the recorded window is reported per request.
//!
//! Output: a human summary on stderr and one JSON object on stdout.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use http::Uri;
use trellis_benches::load::{Options, Scenario};

#[derive(Parser, Debug, Clone)]
#[command(about = "Closed-loop HTTP load generator (loopback targets only)")]
struct Args {
    /// Target URL, e.g. http://127.0.0.1:8080/hello (the base URL with
    /// `--scenario`).
    url: Uri,
    /// A scenario file (`benches/scenarios/*.toml`).
    #[arg(long)]
    scenario: Option<std::path::PathBuf>,
    /// Open loop: this many requests per second in total.
    #[arg(long)]
    rate: Option<f64>,
    /// A request unanswered this long counts as a timeout.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Concurrent connections.
    #[arg(long, short, default_value_t = 64)]
    connections: usize,
    /// Recorded duration.
    #[arg(long, short, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Unrecorded warm-up before the recorded window.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Stop after this many recorded requests.
    #[arg(long, default_value_t = 50_000_000)]
    max_requests: u64,
    /// Use HTTP/2 (prior knowledge) instead of HTTP/1.1.
    #[arg(long)]
    http2: bool,
    /// Measure this process's CPU time over the recorded window.
    #[arg(long)]
    server_pid: Option<u32>,
    /// A label for the JSON output.
    #[arg(long, default_value = "")]
    label: String,
    /// Read-heavy skew: append an id drawn from a Zipf distribution over
    /// 1..=N to each request's path (e.g. `/notes/` + id).
    #[arg(long, value_name = "N")]
    zipf: Option<u32>,
    /// The Zipf exponent (1.0 is the classic skew).
    #[arg(long, default_value_t = 1.0)]
    zipf_exponent: f64,
    /// A request header, `name: value` (repeatable).
    #[arg(long = "header", short = 'H', value_parser = parse_header)]
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

fn parse_header(text: &str) -> Result<(http::HeaderName, http::HeaderValue), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("`{text}` is not `name: value`"))?;
    let name = http::HeaderName::from_bytes(name.trim().as_bytes()).map_err(|e| e.to_string())?;
    let value = http::HeaderValue::from_str(value.trim()).map_err(|e| e.to_string())?;
    Ok((name, value))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut scenario = match &args.scenario {
        Some(path) => Scenario::load(path)?,
        None => {
            let path = args.url.path_and_query().map_or("/", |p| p.as_str());
            Scenario::get(path)
        }
    };
    if let Some(n) = args.zipf {
        for step in &mut scenario.request {
            step.path.push_str("{zipf}");
        }
        scenario.zipf = Some(n);
        scenario.zipf_exponent = args.zipf_exponent;
    }
    let options = Options {
        target: args.url.clone(),
        scenario,
        connections: args.connections,
        duration: args.duration,
        warmup: args.warmup,
        max_requests: args.max_requests,
        http2: args.http2,
        rate: args.rate,
        timeout: args.timeout,
        headers: args.headers.clone(),
    };
    // The server's CPU is read around the recorded window.
    let cpu = args.server_pid.map(|pid| {
        let warmup = args.warmup;
        tokio::spawn(async move {
            tokio::time::sleep(warmup).await;
            cpu_seconds(pid)
        })
    });
    let report = trellis_benches::load::run(&options).await?;
    let cpu_us = match cpu {
        Some(before) => {
            let before = before.await??;
            let after = cpu_seconds(args.server_pid.unwrap_or_default())?;
            Some((after - before) * 1e6 / report.requests.max(1) as f64)
        }
        None => None,
    };
    let mut json = serde_json::to_value(&report)?;
    if let Some(object) = json.as_object_mut() {
        object.insert("label".into(), args.label.clone().into());
        object.insert("url".into(), args.url.to_string().into());
        object.insert(
            "scenario".into(),
            options.scenario.description.clone().into(),
        );
        object.insert(
            "protocol".into(),
            if args.http2 { "h2" } else { "http/1.1" }.into(),
        );
        object.insert("connections".into(), args.connections.into());
        object.insert(
            "mode".into(),
            if args.rate.is_some() {
                "open"
            } else {
                "closed"
            }
            .into(),
        );
        object.insert("target_rps".into(), args.rate.into());
        object.insert("server_cpu_us_per_request".into(), cpu_us.into());
    }
    let latency = &report.latency_ms;
    eprintln!(
        "{} {}: {:.0} req/s  p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  errors {}  non-2xx {}{}",
        args.url,
        options.scenario.description,
        report.rps,
        latency.p50,
        latency.p99,
        latency.max,
        report.errors,
        report.non_2xx,
        cpu_us
            .map(|c| format!("  server CPU {c:.1} µs/req"))
            .unwrap_or_default()
    );
    println!("{json}");
    Ok(())
}

/// User + system CPU seconds of `pid` so far (Linux `/proc/<pid>/stat`).
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces) start at ')'.
    let after = stat.rsplit_once(')').context("malformed stat")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11).context("no utime")?.parse::<f64>()?
        + fields.get(12).context("no stime")?.parse::<f64>()?;
    Ok(ticks / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

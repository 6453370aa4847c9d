//! `trellis-load`: a closed-loop HTTP load generator for loopback targets.
//!
//! Each of `--connections` keep-alive connections (HTTP/1.1, or one HTTP/2
//! connection per task with `--http2`) sends the next request as soon as
//! the previous answer arrives, for `--warmup` (not recorded) and then
//! `--duration`, or until `--max-requests`. Latencies go into an HDR
//! histogram. With `--server-pid`, the server's CPU time (user + system, from
//! `/proc`) is measured over the recorded window and reported per request.
//!
//! Output: a human summary on stderr and one JSON object on stdout.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

#[derive(Parser, Debug, Clone)]
#[command(about = "Closed-loop HTTP load generator (loopback targets only)")]
struct Args {
    /// Target URL, e.g. http://127.0.0.1:8080/hello
    url: Uri,
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
    /// 1..=N to the URL's path on every request (e.g. `/notes/` + id).
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

/// The longest run allowed, whatever the flags say.
const MAX_DURATION: Duration = Duration::from_secs(300);

struct Shared {
    recorded: AtomicU64,
    errors: AtomicU64,
    non_2xx: AtomicU64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let addr = loopback_addr(&args.url)?;
    if args.duration + args.warmup > MAX_DURATION {
        bail!("warm-up + duration is capped at {MAX_DURATION:?}");
    }
    let shared = Arc::new(Shared {
        recorded: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        non_2xx: AtomicU64::new(0),
    });
    let start = Instant::now();
    let record_from = start + args.warmup;
    let stop_at = record_from + args.duration;

    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        let args = args.clone();
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            connection(args, addr, shared, record_from, stop_at).await
        }));
    }
    tokio::time::sleep_until(record_from.into()).await;
    let cpu_before = args.server_pid.map(cpu_seconds).transpose()?;
    let mut histogram = Histogram::<u64>::new(3)?;
    for task in tasks {
        histogram.add(task.await??)?;
    }
    let elapsed = Instant::now()
        .min(stop_at)
        .saturating_duration_since(record_from);
    let cpu_after = args.server_pid.map(cpu_seconds).transpose()?;

    let requests = histogram.len();
    let rps = requests as f64 / elapsed.as_secs_f64().max(1e-9);
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    let cpu_us = cpu_before
        .zip(cpu_after)
        .map(|(b, a)| (a - b) * 1e6 / requests.max(1) as f64);
    let report = serde_json::json!({
        "label": args.label,
        "url": args.url.to_string(),
        "protocol": if args.http2 { "h2" } else { "http/1.1" },
        "connections": args.connections,
        "seconds": elapsed.as_secs_f64(),
        "requests": requests,
        "rps": rps,
        "latency_ms": {
            "p50": ms(0.50), "p90": ms(0.90), "p95": ms(0.95), "p99": ms(0.99),
            "max": histogram.max() as f64 / 1000.0,
        },
        "errors": shared.errors.load(Ordering::Relaxed),
        "non_2xx": shared.non_2xx.load(Ordering::Relaxed),
        "server_cpu_us_per_request": cpu_us,
    });
    eprintln!(
        "{}: {:.0} req/s  p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  errors {}  non-2xx {}{}",
        args.url,
        rps,
        ms(0.5),
        ms(0.99),
        histogram.max() as f64 / 1000.0,
        report["errors"],
        report["non_2xx"],
        cpu_us
            .map(|c| format!("  server CPU {c:.1} µs/req"))
            .unwrap_or_default()
    );
    println!("{report}");
    Ok(())
}

/// One connection's closed loop; returns its latency histogram (µs).
async fn connection(
    args: Args,
    addr: SocketAddr,
    shared: Arc<Shared>,
    record_from: Instant,
    stop_at: Instant,
) -> anyhow::Result<Histogram<u64>> {
    let mut histogram = Histogram::<u64>::new(3)?;
    let mut sender = Sender::connect(addr, args.http2).await?;
    // HTTP/1.1 sends the origin form (`/path`); HTTP/2 needs the full URI.
    let uri = if args.http2 {
        args.url.clone()
    } else {
        args.url
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .parse()?
    };
    let ids = args.zipf.map(|n| Zipf::new(n, args.zipf_exponent));
    let mut seed = u64::from(addr.port()) ^ (start_nanos() | 1);
    while Instant::now() < stop_at && shared.recorded.load(Ordering::Relaxed) < args.max_requests {
        let target = match &ids {
            Some(ids) => format!("{uri}{}", ids.sample(&mut seed)).parse()?,
            None => uri.clone(),
        };
        let mut request = Request::get(target)
            .header(http::header::HOST, addr.to_string())
            .body(Empty::<Bytes>::new())?;
        for (name, value) in &args.headers {
            request.headers_mut().append(name.clone(), value.clone());
        }
        let sent = Instant::now();
        match sender.send(request).await {
            Ok(status) => {
                if sent >= record_from {
                    histogram.record(sent.elapsed().as_micros() as u64)?;
                    shared.recorded.fetch_add(1, Ordering::Relaxed);
                    if !status.is_success() {
                        shared.non_2xx.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Err(_) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                sender = Sender::connect(addr, args.http2).await?;
            }
        }
    }
    Ok(histogram)
}

/// Ids 1..=n with P(k) ∝ 1/k^s, drawn by binary search over the CDF.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: u32, s: f64) -> Self {
        let mut total = 0.0;
        let mut cdf: Vec<f64> = (1..=n.max(1))
            .map(|k| {
                total += 1.0 / f64::from(k).powf(s);
                total
            })
            .collect();
        for p in &mut cdf {
            *p /= total;
        }
        Zipf { cdf }
    }

    fn sample(&self, state: &mut u64) -> usize {
        // xorshift64*: plenty for spreading load, no dependency.
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        let draw = (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64;
        self.cdf.partition_point(|p| *p < draw) + 1
    }
}

fn start_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or(1)
}

enum Sender {
    Http1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    Http2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
}

impl Sender {
    async fn connect(addr: SocketAddr, http2: bool) -> anyhow::Result<Sender> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let io = TokioIo::new(stream);
        if http2 {
            let (sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
            tokio::spawn(conn);
            Ok(Sender::Http2(sender))
        } else {
            let (sender, conn) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(conn);
            Ok(Sender::Http1(sender))
        }
    }

    async fn send(&mut self, request: Request<Empty<Bytes>>) -> anyhow::Result<http::StatusCode> {
        let response = match self {
            Sender::Http1(s) => {
                s.ready().await?;
                s.send_request(request).await?
            }
            Sender::Http2(s) => {
                s.ready().await?;
                s.send_request(request).await?
            }
        };
        let status = response.status();
        response.into_body().collect().await?;
        Ok(status)
    }
}

/// The target's address; anything but loopback is refused.
fn loopback_addr(url: &Uri) -> anyhow::Result<SocketAddr> {
    let host = url.host().context("the URL has no host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = match host {
        "localhost" => IpAddr::from([127, 0, 0, 1]),
        other => other
            .parse()
            .context("the host must be a loopback IP or localhost")?,
    };
    if !ip.is_loopback() {
        bail!("{ip} is not a loopback address: load runs target this machine only");
    }
    Ok(SocketAddr::new(ip, url.port_u16().unwrap_or(80)))
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

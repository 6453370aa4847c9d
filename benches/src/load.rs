//! The load generator behind `trellis-load`, for loopback targets only.
//!
//! Two modes:
//! - **closed loop** (default): each of `connections` keep-alive connections
//!   sends its next request as soon as the previous answer arrives: the
//!   most a server can do with that many clients.
//! - **open loop** (`rate`): requests are due at a constant total rate,
//!   spread over the connections, whatever the server does. A request's
//!   latency counts from when it was *due*, not when it could be sent, so a
//!   server that falls behind shows it in the percentiles (no coordinated
//!   omission).
//!
//! HTTP/1.1 keep-alive or HTTP/2 (prior knowledge, one connection per
//! task). A [`Scenario`] (a TOML file) names weighted requests and setup
//! requests made once before the warm-up. Latencies go into an HDR
//! histogram; failures are counted by kind.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Deserialize;
use tokio::net::TcpStream;

/// The longest run allowed, whatever the options say.
pub const MAX_DURATION: Duration = Duration::from_secs(900);

/// What to send: weighted requests, and setup requests made once first.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// What the scenario measures.
    #[serde(default)]
    pub description: String,
    /// `{zipf}` in a path or body draws an id from a Zipf distribution
    /// over 1..=this (exponent `zipf_exponent`).
    #[serde(default)]
    pub zipf: Option<u32>,
    /// The Zipf exponent (1.0 is the classic skew).
    #[serde(default = "one")]
    pub zipf_exponent: f64,
    /// Made in order before the warm-up; each `repeat` times.
    #[serde(default)]
    pub setup: Vec<Step>,
    /// The load: one is drawn per request, by weight.
    pub request: Vec<Step>,
}

fn one() -> f64 {
    1.0
}

/// One request template. In `path` and `body`, `{n}` is a number unique
/// to the request, `{run}` one unique to the run, `{zipf}` a skewed id.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The method (GET when absent).
    #[serde(default)]
    pub method: Option<String>,
    /// The path and query.
    pub path: String,
    /// Request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body.
    #[serde(default)]
    pub body: Option<String>,
    /// Relative frequency among `request` steps.
    #[serde(default = "one_u32")]
    pub weight: u32,
    /// How often a setup step is made.
    #[serde(default = "one_u32")]
    pub repeat: u32,
}

fn one_u32() -> u32 {
    1
}

impl Scenario {
    /// Reads a scenario file.
    pub fn load(path: &std::path::Path) -> anyhow::Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let scenario: Scenario = toml::from_str(&text)
            .with_context(|| format!("{} is not a scenario", path.display()))?;
        scenario.check()?;
        Ok(scenario)
    }

    /// One GET of `path_and_query`.
    pub fn get(path_and_query: &str) -> Scenario {
        Scenario {
            description: format!("GET {path_and_query}"),
            zipf: None,
            zipf_exponent: 1.0,
            setup: Vec::new(),
            request: vec![Step {
                method: None,
                path: path_and_query.to_string(),
                headers: BTreeMap::new(),
                body: None,
                weight: 1,
                repeat: 1,
            }],
        }
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.request.is_empty() || self.request.iter().all(|s| s.weight == 0) {
            bail!("a scenario needs at least one [[request]] with a weight above 0");
        }
        let uses_zipf = self.setup.iter().chain(&self.request).any(|s| {
            s.path.contains("{zipf}") || s.body.as_deref().unwrap_or("").contains("{zipf}")
        });
        if uses_zipf && self.zipf.is_none() {
            bail!("`{{zipf}}` is used but `zipf = N` is not set");
        }
        for step in self.setup.iter().chain(&self.request) {
            step.method()?;
            if !step.path.starts_with('/') {
                bail!("path `{}` does not start with /", step.path);
            }
            for (name, value) in &step.headers {
                HeaderName::from_bytes(name.as_bytes())
                    .with_context(|| format!("bad header name `{name}`"))?;
                HeaderValue::from_str(value)
                    .with_context(|| format!("bad value for header `{name}`"))?;
            }
        }
        Ok(())
    }
}

impl Step {
    fn method(&self) -> anyhow::Result<Method> {
        let method = self.method.as_deref().unwrap_or("GET");
        Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .with_context(|| format!("`{method}` is not a method"))
    }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// `http://127.0.0.1:PORT`: where the scenario's paths go.
    pub target: Uri,
    /// What to send.
    pub scenario: Scenario,
    /// Connections (each with one request in flight).
    pub connections: usize,
    /// The recorded window.
    pub duration: Duration,
    /// Unrecorded time before it.
    pub warmup: Duration,
    /// Stop after this many recorded requests.
    pub max_requests: u64,
    /// HTTP/2 instead of HTTP/1.1.
    pub http2: bool,
    /// Open loop at this many requests per second in total; closed loop
    /// when `None`.
    pub rate: Option<f64>,
    /// A request not answered in this long is a `timeout` error.
    pub timeout: Duration,
    /// Extra headers on every request.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// Latency percentiles, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// The slowest.
    pub max: f64,
}

impl Latency {
    /// The percentiles of a histogram of microseconds.
    pub fn of(histogram: &Histogram<u64>) -> Latency {
        let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
        Latency {
            p50: ms(0.50),
            p90: ms(0.90),
            p95: ms(0.95),
            p99: ms(0.99),
            max: histogram.max() as f64 / 1000.0,
        }
    }
}

/// What a run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// The recorded window, seconds.
    pub seconds: f64,
    /// Answered requests in it (any status).
    pub requests: u64,
    /// Answered requests per second.
    pub rps: f64,
    /// Latency of the answered requests.
    pub latency_ms: Latency,
    /// Failures: no answer (`connect`, `timeout`, `io`) or not 2xx/3xx
    /// (`status_4xx`, `status_503`, `status_5xx`).
    pub errors_by_kind: BTreeMap<&'static str, u64>,
    /// Requests without an answer.
    pub errors: u64,
    /// Answers that were not 2xx or 3xx.
    pub non_2xx: u64,
}

#[derive(Default)]
struct Counters {
    recorded: AtomicU64,
    connect: AtomicU64,
    timeout: AtomicU64,
    io: AtomicU64,
    status_4xx: AtomicU64,
    status_503: AtomicU64,
    status_5xx: AtomicU64,
}

/// The target's address; anything but loopback is refused.
pub fn loopback_addr(url: &Uri) -> anyhow::Result<SocketAddr> {
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

/// Runs the setup steps, then the load; returns what it measured.
pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let addr = loopback_addr(&options.target)?;
    if options.duration + options.warmup > MAX_DURATION {
        bail!("warm-up + duration is capped at {MAX_DURATION:?}");
    }
    if options.connections == 0 {
        bail!("at least one connection");
    }
    if let Some(rate) = options.rate
        && !(rate > 0.0 && rate <= 1e7)
    {
        bail!("the rate must be above 0 and at most 10,000,000 per second");
    }
    let templates = Arc::new(Templates::new(&options.scenario));
    setup(options, addr, &templates).await?;

    let counters = Arc::new(Counters::default());
    let start = Instant::now();
    let record_from = start + options.warmup;
    let stop_at = record_from + options.duration;
    let mut tasks = Vec::new();
    for index in 0..options.connections {
        let options = options.clone();
        let counters = counters.clone();
        let templates = templates.clone();
        tasks.push(tokio::spawn(async move {
            let window = Window {
                start,
                record_from,
                stop_at,
            };
            connection(&options, addr, index, &templates, &counters, window).await
        }));
    }
    let mut histogram = Histogram::<u64>::new(3)?;
    for task in tasks {
        histogram.add(task.await??)?;
    }
    let elapsed = Instant::now()
        .min(stop_at)
        .saturating_duration_since(record_from);
    let requests = histogram.len();
    let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let errors_by_kind: BTreeMap<&'static str, u64> = [
        ("connect", read(&counters.connect)),
        ("timeout", read(&counters.timeout)),
        ("io", read(&counters.io)),
        ("status_4xx", read(&counters.status_4xx)),
        ("status_503", read(&counters.status_503)),
        ("status_5xx", read(&counters.status_5xx)),
    ]
    .into_iter()
    .collect();
    Ok(Report {
        seconds: elapsed.as_secs_f64(),
        requests,
        rps: requests as f64 / elapsed.as_secs_f64().max(1e-9),
        latency_ms: Latency::of(&histogram),
        errors: read(&counters.connect) + read(&counters.timeout) + read(&counters.io),
        non_2xx: read(&counters.status_4xx)
            + read(&counters.status_503)
            + read(&counters.status_5xx),
        errors_by_kind,
    })
}

#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    record_from: Instant,
    stop_at: Instant,
}

/// The scenario with its weights as a cumulative table and its Zipf CDF.
struct Templates {
    steps: Vec<Step>,
    cumulative: Vec<u32>,
    zipf: Option<Zipf>,
    run: u64,
    next: AtomicU64,
}

impl Templates {
    fn new(scenario: &Scenario) -> Templates {
        let mut total = 0;
        let cumulative = scenario
            .request
            .iter()
            .map(|s| {
                total += s.weight;
                total
            })
            .collect();
        Templates {
            steps: scenario.request.clone(),
            cumulative,
            zipf: scenario.zipf.map(|n| Zipf::new(n, scenario.zipf_exponent)),
            run: start_nanos(),
            next: AtomicU64::new(1),
        }
    }

    fn pick(&self, seed: &mut u64) -> &Step {
        let total = self.cumulative.last().copied().unwrap_or(1).max(1);
        let draw = (next_random(seed) * f64::from(total)) as u32;
        let index = self.cumulative.partition_point(|c| *c <= draw);
        &self.steps[index.min(self.steps.len() - 1)]
    }

    /// `text` with its placeholders filled.
    fn fill(&self, text: &str, seed: &mut u64) -> String {
        if !text.contains('{') {
            return text.to_string();
        }
        let mut out = text.replace("{run}", &self.run.to_string());
        if out.contains("{n}") {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            out = out.replace("{n}", &n.to_string());
        }
        if let Some(zipf) = &self.zipf {
            while let Some(at) = out.find("{zipf}") {
                out.replace_range(at..at + "{zipf}".len(), &zipf.sample(seed).to_string());
            }
        }
        out
    }

    fn request(
        &self,
        step: &Step,
        options: &Options,
        addr: SocketAddr,
        seed: &mut u64,
    ) -> anyhow::Result<Request<Full<Bytes>>> {
        let path = self.fill(&step.path, seed);
        // HTTP/1.1 sends the origin form (`/path`); HTTP/2 the full URI.
        let uri: Uri = if options.http2 {
            format!("http://{addr}{path}").parse()?
        } else {
            path.parse()?
        };
        let body = step
            .body
            .as_deref()
            .map(|b| Bytes::from(self.fill(b, seed)))
            .unwrap_or_default();
        let mut request = Request::builder()
            .method(step.method()?)
            .uri(uri)
            .header(http::header::HOST, addr.to_string())
            .body(Full::new(body))?;
        for (name, value) in &step.headers {
            request.headers_mut().insert(
                HeaderName::from_bytes(name.as_bytes())?,
                HeaderValue::from_str(value)?,
            );
        }
        for (name, value) in &options.headers {
            request.headers_mut().append(name.clone(), value.clone());
        }
        Ok(request)
    }
}

/// The setup steps, on one connection; any answer but 2xx stops the run.
async fn setup(options: &Options, addr: SocketAddr, templates: &Templates) -> anyhow::Result<()> {
    if options.scenario.setup.is_empty() {
        return Ok(());
    }
    let mut sender = Sender::connect(addr, options.http2).await?;
    let mut seed = start_nanos() | 1;
    for step in &options.scenario.setup {
        for _ in 0..step.repeat {
            let request = templates.request(step, options, addr, &mut seed)?;
            let status = tokio::time::timeout(options.timeout, sender.send(request))
                .await
                .context("a setup request timed out")??;
            if !status.is_success() {
                bail!("setup {} {} answered {status}", step.method()?, step.path);
            }
        }
    }
    Ok(())
}

/// Waits until `due`, to within microseconds. tokio's timer fires on
/// millisecond ticks, up to a tick late, and open-loop latency counts from
/// when a request was due: a native hello server measured 1.4 ms p50 at
/// 1,000 req/s, nearly all of it the timer. So: sleep until shortly
/// before (a tick can be over 1 ms late: 1 ms early still measured a
/// native server at 0.39 ms p50), then yield until it is time.
async fn wait_until(due: Instant) {
    const EARLY: Duration = Duration::from_millis(2);
    if let Some(early) = due.checked_sub(EARLY)
        && Instant::now() < early
    {
        tokio::time::sleep_until(early.into()).await;
    }
    while Instant::now() < due {
        tokio::task::yield_now().await;
    }
}

/// One connection's loop; returns its latency histogram (µs).
async fn connection(
    options: &Options,
    addr: SocketAddr,
    index: usize,
    templates: &Templates,
    counters: &Counters,
    window: Window,
) -> anyhow::Result<Histogram<u64>> {
    let mut histogram = Histogram::<u64>::new(3)?;
    let mut sender = None;
    let mut seed = (u64::from(addr.port()) << 32) ^ (start_nanos() | 1) ^ (index as u64 + 1);
    // Open loop: this connection's share of the rate, offset so the
    // connections take turns.
    let interval = options
        .rate
        .map(|rate| Duration::from_secs_f64(options.connections as f64 / rate));
    let mut due = window.start
        + interval.map_or(Duration::ZERO, |i| {
            i.mul_f64(index as f64 / options.connections as f64)
        });
    loop {
        if let Some(interval) = interval {
            wait_until(due).await;
            due += interval;
        }
        let now = Instant::now();
        if now >= window.stop_at
            || counters.recorded.load(Ordering::Relaxed) >= options.max_requests
        {
            break;
        }
        // Latency counts from when the request was due (open loop).
        let sent = match interval {
            Some(interval) => (due - interval).min(now),
            None => now,
        };
        let recorded = sent >= window.record_from;
        let live = match sender.take() {
            Some(live) => live,
            None => match Sender::connect(addr, options.http2).await {
                Ok(live) => live,
                Err(_) => {
                    if recorded {
                        counters.connect.fetch_add(1, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let step = templates.pick(&mut seed);
        let request = templates.request(step, options, addr, &mut seed)?;
        let mut live = live;
        match tokio::time::timeout(options.timeout, live.send(request)).await {
            Ok(Ok(status)) => {
                sender = Some(live);
                if recorded {
                    histogram.record(sent.elapsed().as_micros() as u64)?;
                    counters.recorded.fetch_add(1, Ordering::Relaxed);
                    let counter = match status.as_u16() {
                        200..=399 => None,
                        400..=499 => Some(&counters.status_4xx),
                        503 => Some(&counters.status_503),
                        _ => Some(&counters.status_5xx),
                    };
                    if let Some(counter) = counter {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            // A broken or timed-out connection is dropped; the next
            // request opens another.
            Ok(Err(_)) if recorded => {
                counters.io.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) if recorded => {
                counters.timeout.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
    Ok(histogram)
}

/// Ids 1..=n with P(k) ∝ 1/k^s, drawn by binary search over the CDF.
#[derive(Debug)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// The distribution over 1..=n with exponent s.
    pub fn new(n: u32, s: f64) -> Self {
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

    /// One id.
    pub fn sample(&self, state: &mut u64) -> usize {
        let draw = next_random(state);
        self.cdf
            .partition_point(|p| *p < draw)
            .min(self.cdf.len() - 1)
            + 1
    }
}

/// Uniform in [0, 1): xorshift64*, plenty for spreading load.
fn next_random(state: &mut u64) -> f64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
}

fn start_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}

enum Sender {
    Http1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    Http2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
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

    async fn send(&mut self, request: Request<Full<Bytes>>) -> anyhow::Result<http::StatusCode> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The reported percentiles of a known distribution are its exact
    /// quantiles, within the histogram's 3 significant digits.
    #[test]
    fn percentiles_match_a_known_distribution() {
        // Uniform 1..=100,000 µs.
        let mut uniform = Histogram::<u64>::new(3).expect("histogram");
        for us in 1..=100_000u64 {
            uniform.record(us).expect("record");
        }
        let got = Latency::of(&uniform);
        for (value, exact) in [
            (got.p50, 50.0),
            (got.p90, 90.0),
            (got.p95, 95.0),
            (got.p99, 99.0),
            (got.max, 100.0),
        ] {
            assert!((value - exact).abs() / exact < 0.001, "{value} vs {exact}");
        }

        // Exponential with a 2 ms mean, by inverse transform: quantile q is
        // -2 ln(1 - q) ms.
        let mut exponential = Histogram::<u64>::new(3).expect("histogram");
        let n = 200_000;
        for i in 0..n {
            let q = (f64::from(i) + 0.5) / f64::from(n);
            exponential
                .record((-2000.0 * (1.0 - q).ln()) as u64)
                .expect("record");
        }
        let got = Latency::of(&exponential);
        for (value, q) in [
            (got.p50, 0.5f64),
            (got.p90, 0.9),
            (got.p95, 0.95),
            (got.p99, 0.99),
        ] {
            let exact = -2.0 * (1.0 - q).ln();
            assert!(
                (value - exact).abs() / exact < 0.002,
                "q{q}: {value} vs {exact}"
            );
        }
    }

    #[test]
    fn zipf_draws_stay_in_range_and_favour_small_ids() {
        let zipf = Zipf::new(100, 1.0);
        let mut seed = 42;
        let mut ones = 0;
        for _ in 0..100_000 {
            let id = zipf.sample(&mut seed);
            assert!((1..=100).contains(&id));
            ones += usize::from(id == 1);
        }
        // P(1) = 1 / H(100) ≈ 0.1928.
        let share = ones as f64 / 100_000.0;
        assert!((share - 0.1928).abs() < 0.01, "{share}");
    }

    #[test]
    fn the_scenario_files_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("benches/scenarios") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                Scenario::load(&path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
                seen += 1;
            }
        }
        assert!(seen >= 6, "{seen} scenarios");
    }

    #[test]
    fn only_loopback_targets() {
        assert!(loopback_addr(&"http://127.0.0.1:1/".parse().expect("uri")).is_ok());
        assert!(loopback_addr(&"http://[::1]:1/".parse().expect("uri")).is_ok());
        assert!(loopback_addr(&"http://10.0.0.1:1/".parse().expect("uri")).is_err());
        assert!(loopback_addr(&"http://example.com/".parse().expect("uri")).is_err());
    }

    /// Against a loopback server whose answer times are known (every tenth
    /// request waits 40 ms, the rest answer at once), open-loop latencies
    /// land where they must.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn open_loop_latencies_follow_the_server() {
        use std::sync::atomic::AtomicU64;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(AtomicU64::new(0));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_request| {
                        let n = seen.fetch_add(1, Ordering::Relaxed);
                        async move {
                            if n % 10 == 9 {
                                tokio::time::sleep(Duration::from_millis(40)).await;
                            }
                            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                                Bytes::from_static(b"ok"),
                            )))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        let options = Options {
            target: format!("http://{addr}").parse().expect("uri"),
            scenario: Scenario::get("/"),
            connections: 4,
            duration: Duration::from_secs(2),
            warmup: Duration::ZERO,
            max_requests: 10_000,
            http2: false,
            rate: Some(200.0),
            timeout: Duration::from_secs(5),
            headers: Vec::new(),
        };
        let report = run(&options).await.expect("run");
        // 200/s for 2 s; a connection stuck 40 ms delays its next requests,
        // which still count from when they were due.
        assert!(
            (300..=420).contains(&report.requests),
            "{} requests",
            report.requests
        );
        assert_eq!(report.errors + report.non_2xx, 0);
        assert!(report.latency_ms.p50 < 20.0, "{:?}", report.latency_ms);
        assert!(report.latency_ms.p95 >= 30.0, "{:?}", report.latency_ms);
        assert!(report.latency_ms.max < 1000.0, "{:?}", report.latency_ms);
    }
}

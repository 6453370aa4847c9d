//! The HTTP server: startup (engine, plugins, routes, listener), the accept
//! loop with its connection limit, hyper's HTTP/1.1 + HTTP/2 connections
//! with their timeouts and header limits, and graceful shutdown.
//! Layer: the top; calls `http`, `router` and `plugin`.

mod connections;
mod streams;
mod tls;
mod unread;
mod wire;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio::task::JoinHandle;
use tower_http::compression::CompressionLayer;

use self::connections::{Connection, Drain};
use self::streams::Streams;
use self::tls::Tls;
use self::wire::Limits;
use crate::alerts::{Alerts, Notifier};
use crate::backend::sql::Leader;
use crate::clock::now_ms;
use crate::config::Config;
use crate::deploy::Deployer;
use crate::http::compression::{self, Compressible};
use crate::http::{AdminAuth, App, auth};
use crate::jobs::{Roles, Workers};
use crate::monitor::otlp_metrics::MetricsExporter;
use crate::plugin::{HostError, LoadError, PluginHost};
use crate::router::{RouteConflict, Router};

/// Time queued spans get to reach the collector on shutdown.
const TELEMETRY_FLUSH: Duration = Duration::from_secs(5);

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The plugin host (engine, sql backend) did not start.
    #[error(transparent)]
    Host(#[from] HostError),
    /// A plugin did not load.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Two plugins' routes conflict.
    #[error(transparent)]
    Routes(#[from] RouteConflict),
    /// The live plugins could not be loaded.
    #[error(transparent)]
    Deploy(#[from] crate::deploy::StartupError),
    /// The node's own admin token could not be read or written.
    #[error("cannot keep the admin token in {path}: {source}")]
    AdminToken {
        /// `<data_dir>/admin-token`.
        path: std::path::PathBuf,
        /// Why.
        source: io::Error,
    },
    /// `[server.tls]` names files that cannot serve.
    #[error("server.tls: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// A CA file for a TLS client cannot be used.
    #[error("{key}: {source}")]
    TlsFile {
        /// The config key naming it.
        key: &'static str,
        /// Why.
        source: crate::tls::TlsError,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
}

/// A started server, bound and ready; [`Server::run`] serves.
pub struct Server {
    /// The bound listener.
    listener: TcpListener,
    /// Connections served at once: a permit travels with each connection
    /// task and returns when it ends, so at the limit the accept loop waits
    /// and new clients queue in the kernel's backlog.
    connections: Arc<Semaphore>,
    /// The request pipeline shared by every connection.
    app: Arc<App>,
    /// hyper's connection builder: HTTP/1.1 and HTTP/2, timeouts, limits.
    builder: auto::Builder<Streams>,
    /// Response compression around the pipeline.
    compression: CompressionLayer<Compressible>,
    /// Time in-flight requests get on shutdown.
    shutdown_grace: Duration,
    /// Time the listener stays open with readiness 503 once shutdown begins.
    drain_delay: Duration,
    /// A connection with no request in flight for this long is closed.
    idle_timeout: Duration,
    /// Limits named in the answers to requests hyper refuses.
    limits: Limits,
    /// The plugin host, kept alive as long as the server.
    host: PluginHost,
    /// The alert evaluation task, stopped with the server.
    _alerting: Option<AbortOnDrop>,
    /// OTLP metrics export: the exporter (for the last push on shutdown)
    /// and its periodic task.
    metrics_export: Option<(MetricsExporter, AbortOnDrop)>,
    /// The job workers of this node (role `worker`).
    workers: Option<Workers>,
    /// The job maintenance and scheduler task (role `scheduler`).
    maintenance: Option<AbortOnDrop>,
    /// Follows plugin changes: other nodes', component files.
    _following: AbortOnDrop,
    /// HTTPS (`[server.tls]`), and the task that reloads its certificate.
    tls: Option<(Tls, AbortOnDrop)>,
}

/// A background task that ends when its owner is dropped.
#[derive(Debug)]
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.listener.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Builds the engine, loads every plugin (in parallel), builds the routes
    /// and binds the listener. Logs how long it took and whether compiled
    /// components came from the cache.
    pub async fn start(config: &Config) -> Result<Server, StartError> {
        Server::start_as(config, Roles::default()).await
    }

    /// As [`Server::start`], doing only what `roles` say: serve plugin
    /// routes (`api`), run jobs (`worker`), take part in leading the job
    /// maintenance and schedules (`scheduler`). The runtime's own
    /// endpoints (health, metrics, monitoring, the job API) are always
    /// served.
    pub async fn start_as(config: &Config, roles: Roles) -> Result<Server, StartError> {
        let started = Instant::now();
        crate::tls::install_default_provider();
        let tls = config.server.tls.as_ref().map(Tls::load).transpose()?;
        let host = PluginHost::new(config).await?;
        let deploy = Deployer::start(host.clone(), Arc::new(config.clone()), roles.api).await?;
        let registry = deploy.registry().clone();
        let router = deploy.routes();
        let addr = config.server.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let (hits, misses) = host.compile_cache_stats().unwrap_or_default();
        host.metrics().started(started.elapsed());
        tracing::info!(
            addr = %listener.local_addr().unwrap_or(addr),
            plugins = registry.load().len(),
            routes = router.routes().count(),
            compile_cache_hits = hits,
            compile_cache_misses = misses,
            start = if misses == 0 && hits > 0 { "warm" } else { "cold" },
            elapsed_ms = started.elapsed().as_millis() as u64,
            "ready"
        );
        let alerts = Arc::new(Alerts::new(&config.alerts, deploy.store().clone()));
        let notifier = Notifier::new(&config.alerts.webhooks, config.alerts.ca_file.as_deref())
            .map_err(|source| StartError::TlsFile {
                key: "alerts.ca_file",
                source,
            })?;
        let alerting = (!alerts.is_empty()).then(|| {
            AbortOnDrop(tokio::spawn(evaluate_alerts(
                alerts.clone(),
                host.clone(),
                notifier,
                config.alerts.evaluation_interval,
            )))
        });
        let metrics_export = metrics_export(config, &host, deploy.node())?;
        let workers = roles
            .worker
            .then(|| Workers::start(host.capabilities().jobs.queue().clone(), registry.clone()));
        let maintenance = roles.scheduler.then(|| {
            AbortOnDrop(tokio::spawn(crate::jobs::maintenance::run(
                host.capabilities().jobs.queue().clone(),
                registry.clone(),
                host.sql().clone(),
                host.metrics().clone(),
            )))
        });
        let running_jobs = workers.as_ref().map(Workers::canceller);
        let admin = admin_auth(config, addr.ip().is_loopback())?;
        let following = AbortOnDrop(deploy.follow());
        let tls = tls.map(|tls| (tls.clone(), AbortOnDrop(tokio::spawn(tls.follow()))));
        Ok(Server {
            tls,
            _following: following,
            _alerting: alerting,
            metrics_export,
            maintenance,
            workers,
            listener,
            connections: Arc::new(Semaphore::new(config.server.max_connections)),
            app: Arc::new(App::new(
                deploy,
                host.clone(),
                admin,
                alerts,
                config.batch.clone(),
                Compressible::new(&config.compression),
                running_jobs,
            )),
            builder: connections::builder(&config.server),
            compression: compression::layer(&config.compression),
            shutdown_grace: config.server.shutdown_grace,
            idle_timeout: config.server.idle_timeout,
            limits: Limits {
                max_header_bytes: config.server.max_header_bytes.as_u64(),
                header_read_timeout: config.server.header_read_timeout,
                send_timeout: config.server.send_timeout,
            },
            drain_delay: config.server.drain_delay,
            host,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The request pipeline.
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// The plugin host.
    pub fn host(&self) -> &PluginHost {
        &self.host
    }

    /// Serves until `shutdown` completes, then drains: readiness turns 503
    /// at once, the listener stays open for `drain_delay` and then closes
    /// (new connections are refused), idle keep-alive connections close,
    /// HTTP/2 connections get GOAWAY, in-flight requests get the grace
    /// period, workers stop claiming and finish or hand back their jobs,
    /// the job leader's connection (and so its lead) goes, this node leaves
    /// the plugin store's node list, and queued spans are flushed.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let drain = Drain::new();
        self.serve_until(shutdown, &drain).await;
        self.app.drain();
        tracing::info!(
            drain_delay_ms = self.drain_delay.as_millis() as u64,
            "draining: readiness is 503"
        );
        self.serve_until(tokio::time::sleep(self.drain_delay), &drain)
            .await;
        drop(self.listener);
        // The job leader's connection goes with it: another node leads.
        self.maintenance = None;
        let open = drain.count();
        tracing::info!(open_connections = open, "shutting down");
        let grace = self.shutdown_grace;
        let connections = async {
            tokio::select! {
                () = drain.shutdown() => tracing::info!("all connections closed"),
                () = tokio::time::sleep(grace) => {
                    tracing::warn!("grace period over; cutting the remaining connections");
                }
            }
        };
        let workers = async {
            if let Some(workers) = self.workers.take() {
                workers.stop(grace).await;
            }
        };
        tokio::join!(connections, workers);
        self.app.deploy().leave().await;
        self.host.tracing().flush(TELEMETRY_FLUSH).await;
        if let Some((exporter, task)) = self.metrics_export.take() {
            drop(task);
            let text = self.host.metrics().render(&self.host.snapshot());
            match tokio::time::timeout(TELEMETRY_FLUSH, exporter.push(&text)).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::warn!(%err, "last metrics export failed"),
                Err(_) => tracing::warn!("last metrics export did not finish in time"),
            }
        }
        tracing::info!("stopped");
    }

    /// Accepts and serves connections until `until` completes.
    async fn serve_until(&self, until: impl Future<Output = ()>, drain: &Drain) {
        tokio::pin!(until);
        loop {
            let accepted = tokio::select! {
                () = &mut until => return,
                accepted = self.accept() => accepted,
            };
            if let Some((stream, permit)) = accepted {
                self.serve_connection(stream, permit, drain);
            }
        }
    }

    /// Runs the server on a task; the handle stops it.
    pub fn spawn(self) -> io::Result<ServerHandle> {
        let addr = self.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(self.run(async {
            let _ = rx.await;
        }));
        Ok(ServerHandle {
            addr,
            shutdown: Some(tx),
            task,
        })
    }

    /// The next connection and its permit; `None` after a failed accept.
    async fn accept(&self) -> Option<(TcpStream, OwnedSemaphorePermit)> {
        let permit = self.connections.clone().acquire_owned().await.ok()?;
        match self.listener.accept().await {
            Ok((stream, _peer)) => {
                let _ = stream.set_nodelay(true);
                Some((stream, permit))
            }
            Err(err) => {
                // Out of file descriptors and the like: back off, keep serving.
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                None
            }
        }
    }

    fn serve_connection(&self, stream: TcpStream, permit: OwnedSemaphorePermit, drain: &Drain) {
        let connection = Connection {
            app: self.app.clone(),
            metrics: self.host.metrics().clone(),
            builder: self.builder.clone(),
            compression: self.compression.clone(),
            limits: self.limits,
            idle_timeout: self.idle_timeout,
            drain: drain.enter(),
            permit,
        };
        let Some((tls, _)) = &self.tls else {
            tokio::spawn(connection.serve(stream));
            return;
        };
        // The handshake runs on the connection's task, under the time a
        // client has for its request head.
        let acceptor = tls.acceptor().clone();
        let handshake_timeout = self.limits.header_read_timeout;
        tokio::spawn(async move {
            match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => connection.serve(stream).await,
                Ok(Err(err)) => tracing::debug!(%err, "TLS handshake failed"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
        });
    }
}

/// A server running on a task.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl ServerHandle {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets in-flight requests finish, and waits.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Who may call admin endpoints: the configured tokens, or else the node's
/// own token (made on first start; its path is logged).
fn admin_auth(config: &Config, loopback: bool) -> Result<AdminAuth, StartError> {
    if !config.admin.tokens.is_empty() {
        return Ok(AdminAuth::new(&config.admin, loopback, None));
    }
    let path = auth::node_token_path(&config.data_dir);
    let token = auth::node_token(&config.data_dir).map_err(|source| StartError::AdminToken {
        path: path.clone(),
        source,
    })?;
    tracing::info!(
        path = %path.display(),
        reads_open = loopback,
        "no admin.tokens configured: admin writes need the token in this file"
    );
    Ok(AdminAuth::new(&config.admin, loopback, Some(&token)))
}

/// The OTLP metrics exporter and its task, when `[telemetry]` has an
/// endpoint and `export_metrics`.
fn metrics_export(
    config: &Config,
    host: &PluginHost,
    node: &str,
) -> Result<Option<(MetricsExporter, AbortOnDrop)>, StartError> {
    let telemetry = &config.telemetry;
    let Some(endpoint) = telemetry.otlp_endpoint.as_deref() else {
        return Ok(None);
    };
    if !telemetry.export_metrics {
        return Ok(None);
    }
    let exporter = MetricsExporter::new(
        endpoint,
        &telemetry.service_name,
        node,
        telemetry.ca_file.as_deref(),
    )
    .map_err(|source| StartError::TlsFile {
        key: "telemetry.ca_file",
        source,
    })?;
    let host = host.clone();
    let task = tokio::spawn(crate::monitor::otlp_metrics::run(
        exporter.clone(),
        telemetry.metrics_interval,
        move || host.metrics().render(&host.snapshot()),
    ));
    Ok(Some((exporter, AbortOnDrop(task))))
}

/// What alert rules read now (asks the job queue for its depth).
async fn alert_inputs(host: &PluginHost) -> crate::alerts::Inputs {
    let job_queue_depth = match host.capabilities().jobs.queue().waiting().await {
        Ok(n) => Some(n as f64),
        Err(err) => {
            tracing::debug!(%err, "cannot read the job queue's depth");
            None
        }
    };
    let snapshot = host.snapshot();
    crate::alerts::Inputs {
        routes: host.metrics().route_windows(),
        query_cache_hit_rate: snapshot.query_cache_hit_rate(),
        instances_in_use: snapshot.instances_in_use as f64,
        process_rss_bytes: crate::monitor::process_sample().map(|p| p.rss_bytes as f64),
        error_groups_spiking: host.errors().spiking() as f64,
        job_queue_depth,
    }
}

/// Evaluates the alert rules every `interval` and sends the transitions.
async fn evaluate_alerts(
    alerts: Arc<Alerts>,
    host: PluginHost,
    notifier: Notifier,
    interval: Duration,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leader = None;
    loop {
        tick.tick().await;
        if !lead(&host, &alerts, &mut leader).await {
            continue;
        }
        let notifications = match alerts
            .evaluate_and_save(&alert_inputs(&host).await, now_ms())
            .await
        {
            Ok(notifications) => notifications,
            Err(err) => {
                tracing::warn!(%err, "alerts not evaluated: the runtime store does not answer");
                continue;
            }
        };
        for n in &notifications {
            tracing::warn!(
                alert = %n.alert.rule,
                status = ?n.status,
                value = ?n.alert.value,
                labels = ?n.alert.labels,
                "alert"
            );
        }
        notifier.send(notifications);
    }
}

/// Keeps or takes the alert-evaluation role: among nodes sharing a
/// PostgreSQL database exactly one evaluates and notifies.
async fn lead(host: &PluginHost, alerts: &Alerts, leader: &mut Option<Leader>) -> bool {
    let leading = host.sql().hold_lead("alerts", leader).await;
    alerts.set_leading(leading);
    leading
}

/// Loads every plugin and builds the routes without binding: what
/// `trellis check` runs. Returns the number of routes.
pub async fn check(config: &Config) -> Result<usize, StartError> {
    let host = PluginHost::new(config).await?;
    let plugins = crate::deploy::load_configured(&host, config).await?;
    Ok(Router::build(&plugins)?.routes().count())
}

/// The multi-threaded tokio runtime the server runs on (`worker_threads`:
/// one per core when `None`). Guests share its workers with everything
/// else: they yield with `tokio::task::yield_now` at every epoch tick
/// (`plugin::call`), which puts them behind the tasks ready to run and
/// after a look at the sockets.
pub fn runtime(worker_threads: Option<usize>) -> io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = worker_threads {
        builder.worker_threads(n);
    }
    builder.enable_all().build()
}

/// Completes on the first SIGINT or SIGTERM; a second one exits the process
/// at once (130 after SIGINT, 143 after SIGTERM).
pub async fn shutdown_signal() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => Some(signal),
            Err(err) => {
                tracing::warn!(%err, "cannot listen for SIGTERM");
                None
            }
        };
    let sigterm = async |terminate: &mut Option<tokio::signal::unix::Signal>| match terminate {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = sigterm(&mut terminate) => {}
    }
    tracing::info!("signal received; draining (send another to exit at once)");
    tokio::spawn(async move {
        let code = tokio::select! {
            _ = tokio::signal::ctrl_c() => 130,
            () = sigterm(&mut terminate) => 143,
        };
        tracing::warn!("second signal: exiting without draining");
        std::process::exit(code);
    });
}

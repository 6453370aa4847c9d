//! The life of one connection after accept: hyper serves it until the
//! client closes it, until shutdown asks every connection to finish
//! ([`Drain`]), or until it has had no request in flight for
//! `server.idle_timeout` ([`Activity`]) — an HTTP/2 client that keeps a
//! connection open without using it would otherwise hold a slot forever.
//! Either ending is graceful: HTTP/2 gets GOAWAY and its open streams
//! finish; HTTP/1.1 finishes the response it is writing, then closes.
//!
//! Layer: inside `server`; serves requests through `http`'s [`App`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use std::convert::Infallible;

use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::sync::OwnedSemaphorePermit;
use tower_http::compression::CompressionLayer;

use super::streams::{self, Streams};
use super::unread;
use super::wire::{HeadTimedOut, Io, Limits, Wire};
use crate::config::ServerConfig;
use crate::http::App;
use crate::http::compression::{self, Compressible};
use crate::monitor::Metrics;

use hyper_util::rt::TokioTimer;
use hyper_util::server::conn::auto;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// The connections being served, and the signal that asks them to finish.
#[derive(Debug, Clone)]
pub(super) struct Drain {
    signal: watch::Sender<bool>,
    open: Arc<AtomicUsize>,
    closed: Arc<Notify>,
}

impl Drain {
    pub(super) fn new() -> Drain {
        Drain {
            signal: watch::Sender::new(false),
            open: Arc::default(),
            closed: Arc::default(),
        }
    }

    /// Connections open now.
    pub(super) fn count(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Counts a connection as open until the guard is dropped; the receiver
    /// says when to finish.
    pub(super) fn enter(&self) -> (Open, watch::Receiver<bool>) {
        self.open.fetch_add(1, Ordering::AcqRel);
        let open = Open {
            open: self.open.clone(),
            closed: self.closed.clone(),
        };
        (open, self.signal.subscribe())
    }

    /// Asks every connection to finish, and waits until none is open.
    pub(super) async fn shutdown(&self) {
        self.signal.send_replace(true);
        loop {
            let closed = self.closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if self.count() == 0 {
                return;
            }
            closed.await;
        }
    }
}

/// An open connection, counted until dropped.
#[derive(Debug)]
pub(super) struct Open {
    open: Arc<AtomicUsize>,
    closed: Arc<Notify>,
}

impl Drop for Open {
    fn drop(&mut self) {
        if self.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.closed.notify_waiters();
        }
    }
}

/// Requests in flight on one connection, and when the last one ended.
#[derive(Debug)]
pub(super) struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `started` when a request last ended.
    last_ms: AtomicU64,
}

impl Activity {
    pub(super) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
        })
    }

    /// Counts a request as in flight until the guard is dropped.
    pub(super) fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// How long the connection has had no request in flight (`None` while
    /// one is).
    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Acquire));
        Some(self.started.elapsed().saturating_sub(last))
    }

    /// Resolves once the connection has been idle for `timeout`.
    pub(super) async fn idle(&self, timeout: Duration) {
        loop {
            let wait = match self.idle_for() {
                Some(idle) if idle >= timeout => return,
                Some(idle) => timeout - idle,
                None => timeout,
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// A request in flight, counted until dropped.
#[derive(Debug)]
pub(super) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let now = u64::try_from(self.0.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.last_ms.store(now, Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One accepted connection and what serving it takes.
pub(super) struct Connection {
    pub(super) app: Arc<App>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) builder: auto::Builder<Streams>,
    pub(super) compression: CompressionLayer<Compressible>,
    pub(super) limits: Limits,
    pub(super) idle_timeout: Duration,
    /// Counts it among the open connections; the signal to finish.
    pub(super) drain: (Open, watch::Receiver<bool>),
    /// Its slot under `server.max_connections`.
    pub(super) permit: OwnedSemaphorePermit,
}

impl Connection {
    /// Serves `stream` (TCP, or TLS over it) until it ends.
    pub(super) async fn serve<S: Io>(self, stream: S) {
        let Connection {
            app,
            metrics,
            builder,
            compression,
            limits,
            idle_timeout,
            drain: (open, mut finish),
            permit,
        } = self;
        metrics.connection(1);
        let activity = Activity::new();
        let service = tower::ServiceBuilder::new()
            .map_response(compression::weaken_etag)
            .layer(compression)
            .service_fn({
                let activity = activity.clone();
                move |request: http::Request<hyper::body::Incoming>| {
                    let app = app.clone();
                    let in_flight = activity.request();
                    async move {
                        let (request, unread) = unread::track(request);
                        let mut response = app.serve(request).await;
                        unread.close_if_unread(&mut response);
                        streams::responded();
                        drop(in_flight);
                        Ok::<_, Infallible>(response)
                    }
                }
            });
        let service = TowerToHyperService::new(service);
        let timed_out = HeadTimedOut::default();
        let wire = Wire::new(stream, limits, timed_out.clone());
        let connection = builder.serve_connection(TokioIo::new(wire), service);
        let mut connection = std::pin::pin!(connection);
        let mut closing = false;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(err) = result
                        && !timed_out.record(&*err)
                    {
                        tracing::debug!(%err, "connection ended with an error");
                    }
                    break;
                }
                _ = finish.wait_for(|finish| *finish), if !closing => {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
                () = activity.idle(idle_timeout), if !closing => {
                    tracing::debug!("closing an idle connection");
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
        metrics.connection(-1);
        drop(open);
        drop(permit);
    }
}

/// hyper's connection settings from `[server]`.
pub(super) fn builder(config: &ServerConfig) -> auto::Builder<Streams> {
    let max_header = usize::try_from(config.max_header_bytes.as_u64()).unwrap_or(usize::MAX);
    let mut builder = auto::Builder::new(Streams {
        send_timeout: config.send_timeout,
    });
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size(max_header);
    let ping = Some(config.http2_keep_alive_interval).filter(|d| !d.is_zero());
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(max_header).unwrap_or(u32::MAX))
        .keep_alive_interval(ping)
        .keep_alive_timeout(config.http2_keep_alive_timeout)
        .max_concurrent_streams(config.http2_max_concurrent_streams)
        .max_pending_accept_reset_streams(Some(config.http2_max_pending_accept_reset_streams));
    builder
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connection_is_idle_only_without_requests_for_the_timeout() {
        let activity = Activity::new();
        let request = activity.request();
        let timeout = Duration::from_millis(50);
        let idle = tokio::spawn({
            let activity = activity.clone();
            async move { activity.idle(timeout).await }
        });
        tokio::time::sleep(timeout * 4).await;
        assert!(!idle.is_finished(), "idle with a request in flight");
        drop(request);
        tokio::time::timeout(Duration::from_secs(5), idle)
            .await
            .expect("idle once the request ended")
            .expect("joined");
    }

    #[tokio::test]
    async fn shutdown_waits_for_every_open_connection() {
        let drain = Drain::new();
        let (open, mut finish) = drain.enter();
        let waiting = tokio::spawn({
            let drain = drain.clone();
            async move { drain.shutdown().await }
        });
        finish.wait_for(|f| *f).await.expect("asked to finish");
        assert!(!waiting.is_finished());
        drop(open);
        waiting.await.expect("shut down once none is open");
        assert_eq!(drain.count(), 0);
    }
}

//! HTTP/2 streams, each on its own task ([`Streams`] is hyper's executor),
//! watched once their response is ready: a stream that then makes no
//! progress for `server.send_timeout` — the client keeps its flow-control
//! window shut, so hyper waits for capacity that never comes — is dropped,
//! which resets it (`RST_STREAM` with `CANCEL`) and frees what it holds.
//! Before the response is ready the handler's own deadline and the body
//! read timeout bound the stream; HTTP/1.1's stalled writes are the
//! business of [`super::wire`].
//!
//! Progress is a wake-up of the stream's own future: the watch wraps the
//! waker it hands down, so its own timer does not count.
//!
//! Layer: inside `server`; uses nothing of the crate.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::time::{Instant, Sleep};

tokio::task_local! {
    /// The stream whose future is being polled (HTTP/2 only).
    static STREAM: Arc<Progress>;
}

/// Marks the current HTTP/2 stream's response as ready, which starts its
/// watch. Does nothing on HTTP/1.1.
pub(super) fn responded() {
    let _ = STREAM.try_with(|stream| stream.responded.store(true, Ordering::Release));
}

/// hyper's executor for HTTP/2 streams.
#[derive(Debug, Clone, Copy)]
pub(super) struct Streams {
    pub(super) send_timeout: Duration,
}

impl<F> hyper::rt::Executor<F> for Streams
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, future: F) {
        let progress = Arc::new(Progress::default());
        tokio::spawn(Watched {
            future: Box::pin(STREAM.scope(progress.clone(), future)),
            waker: Waker::from(progress.clone()),
            progress,
            send_timeout: self.send_timeout,
            deadline: None,
        });
    }
}

/// A stream's wake-ups, and whether its response is ready.
#[derive(Debug, Default)]
struct Progress {
    woken: AtomicBool,
    responded: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Progress {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// A stream's future under watch.
struct Watched<F> {
    future: Pin<Box<F>>,
    /// Wakes the task and records progress.
    waker: Waker,
    progress: Arc<Progress>,
    send_timeout: Duration,
    /// Set once the response is ready; moved on by every wake-up.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<F: Future<Output = ()>> Future for Watched<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        this.progress.task.register(cx.waker());
        let woken = this.progress.woken.swap(false, Ordering::AcqRel);
        if this
            .future
            .as_mut()
            .poll(&mut Context::from_waker(&this.waker))
            .is_ready()
        {
            return Poll::Ready(());
        }
        if !this.progress.responded.load(Ordering::Acquire) {
            return Poll::Pending;
        }
        let next = Instant::now() + this.send_timeout;
        let deadline = this
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(next)));
        if woken {
            deadline.as_mut().reset(next);
        }
        if deadline.as_mut().poll(cx).is_ready() {
            tracing::debug!(
                send_timeout = ?this.send_timeout,
                "reset an HTTP/2 stream whose response made no progress"
            );
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Executor;

    #[tokio::test]
    async fn a_stream_without_progress_after_its_response_is_dropped() {
        let streams = Streams {
            send_timeout: Duration::from_millis(300),
        };
        let (dropped_tx, dropped_rx) = tokio::sync::oneshot::channel::<()>();
        let (wake_tx, mut wake_rx) = tokio::sync::mpsc::channel::<()>(1);
        streams.execute(async move {
            let _dropped = dropped_tx;
            responded();
            // Progress every 200 ms keeps the stream; then it stalls.
            while wake_rx.recv().await.is_some() {}
        });
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            wake_tx.send(()).await.expect("the stream is alive");
        }
        let started = Instant::now();
        let _ = dropped_rx.await;
        let after = started.elapsed();
        assert!(
            after >= Duration::from_millis(250) && after <= Duration::from_secs(3),
            "{after:?}"
        );
        drop(wake_tx);
    }

    #[tokio::test]
    async fn a_stream_is_not_watched_before_its_response() {
        let streams = Streams {
            send_timeout: Duration::from_millis(50),
        };
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        streams.execute(async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            let _ = done_tx.send(());
        });
        assert!(done_rx.await.is_ok(), "the handler was cut off");
    }
}

//! A request answered before its body was read closes its connection.
//!
//! An early answer — a 401 for an upload without a token, a 413 for a body
//! over the limit — leaves the body's rest on the wire. hyper then closes
//! the HTTP/1.1 connection once the answer is written, but the answer
//! itself said nothing of it, so a pooling client may already have sent
//! its next request on that connection and sees it cut off. Such an answer
//! says `connection: close`, which tells the client not to reuse it.
//!
//! Layer: inside `server`.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response, Version, header};
use hyper::body::{Body, Frame, SizeHint};

/// A request body that records whether it was read to its end.
#[derive(Debug)]
pub(super) struct Tracked<B> {
    inner: B,
    /// `None` for a request with no body to read.
    ended: Option<Arc<AtomicBool>>,
}

/// Whether the request's body was read by the time its answer is ready.
#[derive(Debug)]
pub(super) struct Unread(Option<Arc<AtomicBool>>);

/// Wraps `request`'s body so its answer can tell whether it was read.
pub(super) fn track<B: Body>(request: Request<B>) -> (Request<Tracked<B>>, Unread) {
    let http1 = request.version() <= Version::HTTP_11;
    let ended = (http1 && !request.body().is_end_stream()).then(Arc::default);
    let unread = Unread(ended.clone());
    (request.map(|inner| Tracked { inner, ended }), unread)
}

impl Unread {
    /// Marks `response` as the connection's last when the body was left
    /// unread.
    pub(super) fn close_if_unread<R>(self, response: &mut Response<R>) {
        if self.0.is_some_and(|ended| !ended.load(Ordering::Acquire)) {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_frame(cx);
        if let Some(ended) = &this.ended
            && (matches!(poll, Poll::Ready(None)) || this.inner.is_end_stream())
        {
            ended.store(true, Ordering::Release);
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

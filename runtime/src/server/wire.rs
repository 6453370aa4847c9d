//! The socket as hyper sees it. hyper answers an HTTP/1.1 request it cannot
//! parse by itself — `400` for a malformed request line or header, `431`
//! for a head over `server.max_header_bytes`, `414` — with an empty body,
//! and it closes a connection whose head did not arrive within
//! `server.header_read_timeout` without a word. [`Wire`] puts the runtime's
//! answer in their place: the same status as `application/problem+json`
//! with a request id (logged too), and a `408` for a client that had
//! started a request when its time ran out (an idle keep-alive connection
//! is closed silently, as the protocol asks). After such an answer, and
//! whenever an HTTP/1.1 connection closes before the client has finished
//! sending (a request answered before its body was read), the connection
//! closes lingering: our side is shut down, and what the client is still
//! sending is read and dropped for a bounded time, so the answer reaches it
//! rather than being lost to a reset.
//!
//! A client that stops reading does not hold its connection either: a
//! write the socket takes no byte of for `server.send_timeout` fails, and
//! hyper closes the connection (HTTP/2's flow-control stalls are
//! [`super::streams`]' business).
//!
//! Everything else passes straight through: the check is one prefix
//! comparison per write.
//!
//! Layer: inside `server`; uses `error` and `http::request_id`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Sleep;

use crate::error::ApiError;
use crate::http::request_id;

/// How long a closing connection keeps reading what the client still sends.
const LINGER: Duration = Duration::from_secs(2);
/// The most a closing connection reads before it stops lingering.
const LINGER_BYTES: usize = 4 << 20;

/// What the server's limits are, for the details of its answers.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) max_header_bytes: u64,
    pub(super) header_read_timeout: Duration,
    pub(super) send_timeout: Duration,
}

/// Set by the connection's task when hyper gave up waiting for a head.
#[derive(Debug, Clone, Default)]
pub(super) struct HeadTimedOut(Arc<AtomicBool>);

impl HeadTimedOut {
    /// Records that hyper's connection ended with this error; true when it
    /// was the header read timeout.
    pub(super) fn record(&self, err: &(dyn std::error::Error + 'static)) -> bool {
        let timed_out = err
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_timeout);
        if timed_out {
            self.0.store(true, Ordering::Release);
        }
        timed_out
    }
}

/// What a connection runs on: a TCP stream, or TLS over one.
pub(super) trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for S {}

/// A client connection as hyper reads and writes it.
#[derive(Debug)]
pub(super) struct Wire<S: Io> {
    /// `None` only while dropping.
    stream: Option<S>,
    limits: Limits,
    timed_out: HeadTimedOut,
    /// Whether the first bytes were the HTTP/2 preface.
    http2: Option<bool>,
    /// Bytes arrived since a response was last written: a request is
    /// being read.
    reading: bool,
    /// Our answer in place of hyper's, and how much of it is written.
    refusal: Option<(Vec<u8>, usize)>,
    /// Set while the socket takes no bytes: when the write is given up.
    stalled: Option<Pin<Box<Sleep>>>,
    /// The client closed its side: nothing is left to read.
    ended: bool,
}

impl<S: Io> Wire<S> {
    pub(super) fn new(stream: S, limits: Limits, timed_out: HeadTimedOut) -> Wire<S> {
        Wire {
            stream: Some(stream),
            limits,
            timed_out,
            http2: None,
            reading: false,
            refusal: None,
            stalled: None,
            ended: false,
        }
    }

    fn stream(&mut self) -> Pin<&mut S> {
        Pin::new(self.stream.as_mut().expect("present until dropped"))
    }

    /// Our answer for a response hyper wrote on its own, if `head` is one.
    fn answer_for(&self, head: &[u8]) -> Option<ApiError> {
        let status = bare_refusal(head)?;
        Some(match status {
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ApiError::HeadersTooLarge {
                limit: self.limits.max_header_bytes,
            },
            StatusCode::URI_TOO_LONG => ApiError::UriTooLong,
            _ => ApiError::BadRequest(
                "the request line or a header is not valid HTTP/1.1".to_string(),
            ),
        })
    }

    /// Writes our answer; ready once all of it is written.
    fn poll_refusal(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let Some((bytes, written)) = self.refusal.take() else {
                return Poll::Ready(Ok(()));
            };
            if written == bytes.len() {
                self.refusal = Some((bytes, written));
                return Poll::Ready(Ok(()));
            }
            let poll = self.stream().poll_write(cx, &bytes[written..]);
            match poll {
                Poll::Ready(Ok(n)) => self.refusal = Some((bytes, written + n)),
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => {
                    self.refusal = Some((bytes, written));
                    return Poll::Pending;
                }
            }
        }
    }

    /// Writes `len` bytes of hyper's, or our answer in their place.
    fn poll_written(
        &mut self,
        cx: &mut Context<'_>,
        first: &[u8],
        len: usize,
        write: impl FnOnce(Pin<&mut S>, &mut Context<'_>) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        if self.refusal.is_none()
            && first.starts_with(b"HTTP/1.1 4")
            && let Some(error) = self.answer_for(first)
        {
            self.refusal = Some((render(&error), 0));
        }
        if self.refusal.is_some() {
            // What hyper writes after its refusal is dropped with it.
            return self.poll_refusal(cx).map_ok(|()| len);
        }
        self.reading = false;
        match write(self.stream(), cx) {
            Poll::Pending => self.poll_stalled(cx).map(|()| {
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client took no bytes for server.send_timeout",
                ))
            }),
            written => {
                self.stalled = None;
                written
            }
        }
    }

    /// Ready once writes have been pending for `send_timeout`.
    fn poll_stalled(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let send_timeout = self.limits.send_timeout;
        self.stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(send_timeout)))
            .as_mut()
            .poll(cx)
    }
}

impl<S: Io> AsyncRead for Wire<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = this.stream().poll_read(cx, buf);
        let read = &buf.filled()[before..];
        if matches!(poll, Poll::Ready(Ok(()))) && read.is_empty() && buf.remaining() > 0 {
            this.ended = true;
        }
        if !read.is_empty() {
            this.reading = true;
            if this.http2.is_none() {
                this.http2 = Some(read.starts_with(b"PRI * HTTP/2.0"));
            }
        }
        poll
    }
}

impl<S: Io> AsyncWrite for Wire<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_written(cx, buf, buf.len(), |stream, cx| stream.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| b);
        let len = bufs.iter().map(|b| b.len()).sum();
        self.get_mut().poll_written(cx, first, len, |stream, cx| {
            stream.poll_write_vectored(cx, bufs)
        })
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_refusal(cx))?;
        this.stream().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_refusal(cx))?;
        this.stream().poll_shutdown(cx)
    }
}

impl<S: Io> Drop for Wire<S> {
    fn drop(&mut self) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        let timed_out =
            self.timed_out.0.load(Ordering::Acquire) && self.reading && self.http2 == Some(false);
        let answer = timed_out.then(|| {
            render(&ApiError::HeaderTimeout {
                limit: self.limits.header_read_timeout,
            })
        });
        // An HTTP/1.1 connection we close while the client may still be
        // sending (a request answered before its body was read: a 401 for
        // an upload, a 413) lingers too; closing a socket with unread
        // bytes resets it, and the reset can destroy the answer in flight.
        let unread = self.http2 == Some(false) && !self.ended;
        if answer.is_none() && self.refusal.is_none() && !unread {
            return;
        }
        // Outside a runtime (never, in the server) the socket just closes.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(linger(stream, answer));
        }
    }
}

/// Writes `answer`, shuts our side, and reads what the client still sends
/// for a bounded time before the socket closes.
async fn linger<S: Io>(mut stream: S, answer: Option<Vec<u8>>) {
    let _ = tokio::time::timeout(LINGER, async {
        if let Some(answer) = answer {
            stream.write_all(&answer).await?;
        }
        // Already shut down by hyper, or the client is gone: either way,
        // read what is left.
        let _ = stream.shutdown().await;
        let mut sink = [0u8; 16 * 1024];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match stream.read(&mut sink).await? {
                0 => break,
                n => drained += n,
            }
        }
        Ok::<_, io::Error>(())
    })
    .await;
}

/// The status of `head` if it is a response hyper wrote on its own: a
/// `4xx` it writes for a request it cannot parse, which carries no request
/// id (every response of the pipeline does).
fn bare_refusal(head: &[u8]) -> Option<StatusCode> {
    let status = StatusCode::from_bytes(head.get(9..12)?).ok()?;
    if !matches!(
        status,
        StatusCode::BAD_REQUEST
            | StatusCode::URI_TOO_LONG
            | StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    ) {
        return None;
    }
    let end = head.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = &head[..end];
    let id = request_id::HEADER.as_bytes();
    let has_id = head
        .split(|&b| b == b'\n')
        .any(|line| line.len() > id.len() && line[..id.len()].eq_ignore_ascii_case(id));
    (!has_id).then_some(status)
}

/// `error` as a whole HTTP/1.1 response that closes the connection, with
/// a new request id, which is logged.
fn render(error: &ApiError) -> Vec<u8> {
    let id = request_id::new();
    let status = error.status();
    tracing::info!(
        request_id = %id,
        status = status.as_u16(),
        error = %error,
        "refused a request before it reached the pipeline"
    );
    let body = error.problem(&id);
    let mut response = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/problem+json\r\n{}: {id}\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error"),
        request_id::HEADER,
        body.len(),
    )
    .into_bytes();
    response.extend_from_slice(&body);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_own_refusals_are_replaced() {
        let hyper =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert_eq!(
            bare_refusal(hyper),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\nx-request-id: 1\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(bare_refusal(ours), None);
        let plugin = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(bare_refusal(plugin), None);
        assert_eq!(bare_refusal(b"HTTP/1.1 400 Bad"), None);
    }

    #[test]
    fn the_answer_is_problem_json_with_a_request_id() {
        let answer = render(&ApiError::UriTooLong);
        let text = String::from_utf8(answer).expect("utf-8");
        assert!(text.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{text}");
        let (head, body) = text.split_once("\r\n\r\n").expect("a head");
        assert!(head.contains("content-type: application/problem+json"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).expect("json");
        let id = json["request_id"].as_str().expect("an id");
        assert!(head.contains(&format!("x-request-id: {id}")), "{head}");
    }
}

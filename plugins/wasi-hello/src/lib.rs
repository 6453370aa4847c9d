//! A standard `wasi:http/incoming-handler` component, the world `wasmtime
//! serve` and Spin serve, written against the `wasip2` crate alone (no
//! Trellis SDK). Trellis mounts it at a path prefix (`mount` in its plugin
//! config) and hands it paths below the prefix, so the same file answers
//! the same under both servers.
//!
//! - `GET /stream?bytes=N&type=T`: N bytes (default 1 MiB) of a repeating
//!   pattern of letters, written in 64 KiB chunks as they are made, never
//!   held whole; `T` is the content type (default
//!   `application/octet-stream`).
//! - `POST /upload`: reads the request body as a stream, 64 KiB at a time,
//!   and answers `{"bytes": N, "fnv1a": "<hex>"}`.
//! - `GET /spin`: loops forever (the deadline must stop it).
//! - `GET /memory`: allocates until memory runs out.
//! - `GET /trap`: panics before answering.
//! - `GET /fetch?url=U`: fetches the percent-encoded URL `U` through
//!   `wasi:http/outgoing-handler` and answers with its status and body (a
//!   failed request or body: 502 with the error code).
//! - `GET /env?name=N`: the environment variable `N` (404 without it).
//! - `GET /print?lines=N&text=T`: writes `T <i>` N times to stdout and
//!   once to stderr.
//! - any other method on `/method`: the method's name.
//! - anything else: `Hello, world!`

use std::io::Write as _;

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};

wasip2::http::proxy::export!(Hello);

struct Hello;

const HELLO: &[u8] = b"Hello, world!";
const CHUNK: usize = 64 * 1024;

impl wasip2::exports::http::incoming_handler::Guest for Hello {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let target = request.path_with_query().unwrap_or_default();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        match (request.method(), path) {
            (Method::Get, "/stream") => stream(out, query),
            (Method::Post, "/upload") => upload(request, out),
            (Method::Get, "/spin") => spin(),
            (Method::Get, "/memory") => hoard(),
            (Method::Get, "/trap") => panic!("asked to trap"),
            (Method::Get, "/fetch") => fetch(out, query),
            (Method::Get, "/env") => env(out, query),
            (Method::Get, "/print") => print(out, query),
            (method, "/method") => {
                let name = match method {
                    Method::Other(name) => name,
                    other => format!("{other:?}").to_uppercase(),
                };
                respond(out, 200, "text/plain", name.as_bytes())
            }
            _ => respond(out, 200, "text/plain; charset=utf-8", HELLO),
        }
    }
}

/// The value of `name` in a query string.
fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

fn headers(content_type: &str, length: Option<u64>) -> Fields {
    let mut entries = vec![("content-type".to_string(), content_type.as_bytes().to_vec())];
    if let Some(length) = length {
        entries.push((
            "content-length".to_string(),
            length.to_string().into_bytes(),
        ));
    }
    Fields::from_list(&entries).expect("valid headers")
}

fn respond(out: ResponseOutparam, status: u16, content_type: &str, body: &[u8]) {
    let response = OutgoingResponse::new(headers(content_type, Some(body.len() as u64)));
    response.set_status_code(status).expect("valid status");
    let outgoing = response.body().expect("body taken once");
    ResponseOutparam::set(out, Ok(response));
    let mut stream = outgoing.write().expect("stream taken once");
    // Once the client has the whole body (its length was declared) the
    // host may stop listening: a failed write, flush or finish from then on
    // is not this component's problem.
    let _ = stream
        .write_all(body)
        .and_then(|()| std::io::Write::flush(&mut stream));
    drop(stream);
    let _ = OutgoingBody::finish(outgoing, None);
}

fn stream(out: ResponseOutparam, query: &str) {
    let bytes = param(query, "bytes")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1 << 20);
    let content_type = param(query, "type")
        .map(|t| t.replace("%2F", "/"))
        .unwrap_or_else(|| "application/octet-stream".into());
    let response = OutgoingResponse::new(headers(&content_type, Some(bytes)));
    let outgoing = response.body().expect("body taken once");
    ResponseOutparam::set(out, Ok(response));
    let mut stream = outgoing.write().expect("stream taken once");
    let chunk: Vec<u8> = (0..CHUNK).map(|i| b'a' + (i % 26) as u8).collect();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        // The host stops taking bytes past its response limit: stop too.
        if stream.write_all(&chunk[..n]).is_err() {
            return;
        }
        left -= n as u64;
    }
    let _ = stream.flush();
    drop(stream);
    let _ = OutgoingBody::finish(outgoing, None);
}

fn upload(request: IncomingRequest, out: ResponseOutparam) {
    let body = request.consume().expect("body consumed once");
    let mut stream = body.stream().expect("stream taken once");
    let mut buffer = vec![0; CHUNK];
    let (mut total, mut hash) = (0u64, 0xcbf2_9ce4_8422_2325u64);
    loop {
        match std::io::Read::read(&mut stream, &mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                total += n as u64;
                for byte in &buffer[..n] {
                    hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
                }
            }
            Err(_) => {
                drop(stream);
                return respond(out, 400, "text/plain", b"the request body broke off");
            }
        }
    }
    drop(stream);
    let json = format!("{{\"bytes\":{total},\"fnv1a\":\"{hash:016x}\"}}");
    respond(out, 200, "application/json", json.as_bytes());
}

fn hoard() {
    let mut hoard = Vec::new();
    loop {
        hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
    }
}

fn spin() {
    let mut n = 0u64;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

fn fetch(out: ResponseOutparam, query: &str) {
    let Some(url) = param(query, "url").map(percent_decode) else {
        return respond(out, 400, "text/plain", b"missing ?url=");
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return respond(out, 400, "text/plain", b"not an absolute URL");
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_string()),
    };
    let built = request
        .set_scheme(Some(&scheme))
        .and_then(|()| request.set_authority(Some(authority)))
        .and_then(|()| request.set_path_with_query(Some(path)));
    if built.is_err() {
        return respond(out, 400, "text/plain", b"the URL does not make a request");
    }
    if let Ok(body) = request.body() {
        let _ = OutgoingBody::finish(body, None);
    }
    let response = match outgoing_handler::handle(request, None) {
        Ok(future) => {
            future.subscribe().block();
            match future.get() {
                Some(Ok(Ok(response))) => response,
                Some(Ok(Err(code))) => return failed(out, &format!("{code:?}")),
                _ => return failed(out, "the response future broke"),
            }
        }
        Err(code) => return failed(out, &format!("{code:?}")),
    };
    let status = response.status();
    let Ok(body) = response.consume() else {
        return failed(out, "no body");
    };
    let Ok(stream) = body.stream() else {
        return failed(out, "no body stream");
    };
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(CHUNK as u64) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(wasip2::io::streams::StreamError::Closed) => break,
            Err(wasip2::io::streams::StreamError::LastOperationFailed(err)) => {
                let why = wasip2::http::types::http_error_code(&err)
                    .map_or_else(|| err.to_debug_string(), |code| format!("{code:?}"));
                drop(stream);
                return failed(out, &why);
            }
        }
    }
    drop(stream);
    respond(out, status, "application/octet-stream", &bytes);
}

fn failed(out: ResponseOutparam, why: &str) {
    respond(out, 502, "text/plain", why.as_bytes());
}

/// `%XX` escapes decoded (the rest kept as it is).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn env(out: ResponseOutparam, query: &str) {
    let name = param(query, "name").unwrap_or_default();
    match std::env::var(name) {
        Ok(value) => respond(out, 200, "text/plain", value.as_bytes()),
        Err(_) => respond(out, 404, "text/plain", b"no such variable"),
    }
}

fn print(out: ResponseOutparam, query: &str) {
    let lines: u32 = param(query, "lines")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let text = param(query, "text").map(percent_decode).unwrap_or_default();
    for i in 0..lines {
        println!("{text} {i}");
    }
    eprintln!("{text} on stderr");
    respond(out, 200, "text/plain", b"printed");
}

//! A standard `wasi:http/incoming-handler` component that keeps values
//! through `wasi:keyvalue` (`store`, `atomics`, `batch` at 0.2.0-draft), as
//! it would under `wasmtime serve -S keyvalue` or Spin. Under Trellis the
//! buckets are the plugin's own, in Redis or in process.
//!
//! Every route takes `?store=NAME` (default: the `default` bucket).
//! - `GET /k/{key}`: the value (404 when not set); `HEAD` says whether it
//!   is set.
//! - `PUT /k/{key}`: sets it to the body; `DELETE /k/{key}` removes it.
//! - `POST /k/{key}?add=N`: adds N to the number stored there, answers the
//!   sum.
//! - `GET /keys`: every key, one per line, from as many pages as it takes.
//! - `POST /many`: sets each `key=value` line of the body; `GET
//!   /many?keys=a,b`: a `key=value` line each, `key` alone when not set;
//!   `DELETE /many?keys=a,b` removes them.
//!
//! A store error answers 500 with the error (`NoSuchStore`, `Other("…")`).

use std::io::{Read as _, Write as _};

use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

wit_bindgen::generate!({
    world: "imports",
    path: "../../runtime/wit/wasi-keyvalue",
    generate_all,
});

use wasi::keyvalue::store::{Bucket, Error};
use wasi::keyvalue::{atomics, batch, store};

wasip2::http::proxy::export!(Keeper);

struct Keeper;

impl wasip2::exports::http::incoming_handler::Guest for Keeper {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let target = request.path_with_query().unwrap_or_default();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let (path, query) = (path.to_string(), query.to_string());
        let method = request.method();
        let body = read_body(request);
        let bucket = match store::open(param(&query, "store").unwrap_or("")) {
            Ok(bucket) => bucket,
            Err(err) => return failed(out, &err),
        };
        match serve(&bucket, &method, &path, &query, body) {
            Ok((status, body)) => respond(out, status, &body),
            Err(err) => failed(out, &err),
        }
    }
}

fn serve(
    bucket: &Bucket,
    method: &Method,
    path: &str,
    query: &str,
    body: Vec<u8>,
) -> Result<(u16, Vec<u8>), Error> {
    let many = || -> Vec<String> {
        param(query, "keys")
            .map(|keys| keys.split(',').map(String::from).collect())
            .unwrap_or_default()
    };
    if let Some(key) = path.strip_prefix("/k/") {
        let key = key.to_string();
        return match method {
            Method::Get => Ok(match bucket.get(&key)? {
                Some(value) => (200, value),
                None => (404, b"not set".to_vec()),
            }),
            Method::Head => Ok((if bucket.exists(&key)? { 200 } else { 404 }, Vec::new())),
            Method::Put => bucket.set(&key, &body).map(|()| (204, Vec::new())),
            Method::Delete => bucket.delete(&key).map(|()| (204, Vec::new())),
            Method::Post => {
                let delta = param(query, "add")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                let sum = atomics::increment(bucket, &key, delta)?;
                Ok((200, sum.to_string().into_bytes()))
            }
            _ => Ok((405, Vec::new())),
        };
    }
    match (method, path) {
        (Method::Get, "/keys") => {
            let mut lines = String::new();
            let mut cursor = None;
            loop {
                let page = bucket.list_keys(cursor)?;
                for key in page.keys {
                    lines.push_str(&key);
                    lines.push('\n');
                }
                match page.cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            Ok((200, lines.into_bytes()))
        }
        (Method::Post, "/many") => {
            let text = String::from_utf8_lossy(&body);
            let pairs: Vec<(String, Vec<u8>)> = text
                .lines()
                .filter_map(|line| line.split_once('='))
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect();
            batch::set_many(bucket, &pairs).map(|()| (204, Vec::new()))
        }
        (Method::Get, "/many") => {
            let found = batch::get_many(bucket, &many())?;
            let lines: String = many()
                .iter()
                .zip(found)
                .map(|(key, pair)| match pair {
                    Some((k, v)) => format!("{k}={}\n", String::from_utf8_lossy(&v)),
                    None => format!("{key}\n"),
                })
                .collect();
            Ok((200, lines.into_bytes()))
        }
        (Method::Delete, "/many") => {
            batch::delete_many(bucket, &many()).map(|()| (204, Vec::new()))
        }
        _ => Ok((404, b"no such route".to_vec())),
    }
}

fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

fn read_body(request: IncomingRequest) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Ok(body) = request.consume()
        && let Ok(mut stream) = body.stream()
    {
        let _ = stream.read_to_end(&mut bytes);
    }
    bytes
}

fn failed(out: ResponseOutparam, err: &Error) {
    respond(out, 500, format!("{err:?}").as_bytes());
}

fn respond(out: ResponseOutparam, status: u16, body: &[u8]) {
    let headers = Fields::from_list(&[
        ("content-type".to_string(), b"text/plain".to_vec()),
        (
            "content-length".to_string(),
            body.len().to_string().into_bytes(),
        ),
    ])
    .expect("valid headers");
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status).expect("valid status");
    let outgoing = response.body().expect("body taken once");
    ResponseOutparam::set(out, Ok(response));
    let mut stream = outgoing.write().expect("stream taken once");
    let _ = stream
        .write_all(body)
        .and_then(|()| std::io::Write::flush(&mut stream));
    drop(stream);
    let _ = OutgoingBody::finish(outgoing, None);
}

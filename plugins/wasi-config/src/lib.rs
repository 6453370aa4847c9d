//! A standard `wasi:http/incoming-handler` component that reads its
//! settings through `wasi:config/store`, as it would under `wasmtime serve
//! -S config` or Spin. Under Trellis the store is the plugin's
//! `[plugins.<name>.config]` table.
//!
//! - `GET /?key=K`: the value of `K` (404 when it is not set).
//! - `GET /all`: every setting, a `key=value` line each, sorted.

use std::io::Write as _;

use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

wit_bindgen::generate!({
    world: "reader",
    path: "wit",
    generate_all,
});

use wasi::config::store;

wasip2::http::proxy::export!(Reader);

struct Reader;

impl wasip2::exports::http::incoming_handler::Guest for Reader {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let target = request.path_with_query().unwrap_or_default();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        if path == "/all" {
            return match store::get_all() {
                Ok(mut all) => {
                    all.sort();
                    let lines: String = all.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
                    respond(out, 200, lines.as_bytes())
                }
                Err(err) => respond(out, 500, format!("{err:?}").as_bytes()),
            };
        }
        let key = query
            .split('&')
            .find_map(|pair| pair.strip_prefix("key="))
            .unwrap_or_default();
        match store::get(key) {
            Ok(Some(value)) => respond(out, 200, value.as_bytes()),
            Ok(None) => respond(out, 404, b"not set"),
            Err(err) => respond(out, 500, format!("{err:?}").as_bytes()),
        }
    }
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

//! The per-request pipeline: request id and span, routing, the request body
//! under its limit, the plugin call, and every failure rendered as
//! problem+json. Layer: below `server`, above `router` and `plugin`.

pub mod convert;
pub mod request_id;

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::Full;
use hyper::body::Body;
use tracing::Instrument;

use crate::error::ApiError;
use crate::plugin::GuestRequest;
use crate::router::{Lookup, Router};

/// What every request needs: the current routing table, swapped atomically
/// when plugins change (requests in flight keep the table they started with).
#[derive(Debug)]
pub struct App {
    routes: ArcSwap<Router>,
}

impl App {
    /// An app serving `router`.
    pub fn new(router: Router) -> Self {
        App {
            routes: ArcSwap::from_pointee(router),
        }
    }

    /// The current routing table.
    pub fn routes(&self) -> Arc<Router> {
        self.routes.load_full()
    }

    /// Serves one request; never fails: errors become problem+json.
    pub async fn serve<B>(&self, request: Request<B>) -> Response<Full<Bytes>>
    where
        B: Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let request_id = request_id::from_headers(request.headers());
        let span = tracing::info_span!(
            "request",
            method = %request.method(),
            path = request.uri().path(),
            request_id = %request_id,
        );
        async {
            let started = Instant::now();
            let mut response = match self.dispatch(request, &request_id).await {
                Ok(response) => response,
                Err(err) => {
                    if err.status().is_server_error() {
                        tracing::warn!(code = err.code(), error = %err, "request failed");
                    }
                    err.into_response(&request_id)
                }
            };
            if let Ok(value) = HeaderValue::from_str(&request_id) {
                response.headers_mut().insert(request_id::HEADER, value);
            }
            tracing::debug!(
                status = response.status().as_u16(),
                elapsed_us = started.elapsed().as_micros() as u64,
                "served"
            );
            response
        }
        .instrument(span)
        .await
    }

    async fn dispatch<B>(
        &self,
        request: Request<B>,
        request_id: &str,
    ) -> Result<Response<Full<Bytes>>, ApiError>
    where
        B: Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let routes = self.routes();
        let (parts, body) = request.into_parts();
        let path = parts.uri.path();
        let (target, params) = match routes.lookup(parts.method.as_str(), path) {
            Lookup::Found { target, params } => (target, params),
            Lookup::MethodNotAllowed(allow) => {
                return Err(ApiError::MethodNotAllowed {
                    method: parts.method.to_string(),
                    allow,
                });
            }
            Lookup::NotFound => {
                return Err(ApiError::NotFound {
                    path: path.to_string(),
                });
            }
        };
        let plugin = &target.plugin;
        let limits = plugin.limits();
        let body = convert::read_body(
            body,
            &parts.headers,
            limits.max_request_body.as_u64(),
            limits.deadline,
        )
        .await?;
        let guest_request = GuestRequest {
            route: target.route,
            method: parts.method.to_string(),
            path: path.to_string(),
            params,
            query: convert::query_pairs(parts.uri.query()),
            headers: convert::header_pairs(&parts.headers),
            body,
            request_id: request_id.to_string(),
        };
        let guest_response = plugin.handle(&guest_request).await?;
        // For HEAD, hyper sends the headers (with the GET body's length) and
        // drops the body.
        convert::into_http(plugin.name(), guest_response)
    }
}

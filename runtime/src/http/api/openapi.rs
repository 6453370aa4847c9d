//! `GET /api/v1/openapi.json`: the OpenAPI document of what this node
//! serves now (built by `http::openapi` from the routing table on each
//! request, so it follows reloads). Public.
//! Layer: inside `http::api`.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;

use super::{Call, get_only, json_response};
use crate::error::ApiError;

/// The endpoint.
pub const PATH: &str = "/api/v1/openapi.json";

/// The document for the current routing table.
pub(super) async fn serve(call: Call<'_>) -> Result<Response<Full<Bytes>>, ApiError> {
    get_only(call.parts)?;
    let document = crate::http::openapi::document(&call.app.routes());
    Ok(json_response(StatusCode::OK, &document))
}

//! The plugin admin API (admin token): `GET /admin/plugins` (every plugin:
//! version, hash, routes, load time, state, and what each node serves),
//! `GET /admin/plugins/{name}`, `PUT /admin/plugins/{name}` (upload a
//! component: the body is the `.wasm`; `?grants=sql,cache` for a plugin
//! trellis.toml does not configure), `POST /admin/plugins/{name}/reload`,
//! `POST /admin/plugins/{name}/rollback`, `DELETE /admin/plugins/{name}`.
//! The work is `deploy::Deployer`'s; this module maps HTTP onto it.
//! Layer: inside `http::api`, above `deploy`.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use serde_json::json;

use super::{Call, json_response, segments_under};
use crate::deploy::DeployError;
use crate::error::ApiError;
use crate::http::convert;

/// The path prefix.
pub const PATH: &str = "/admin/plugins";

/// Time to receive an upload.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// Serves a request under [`PATH`].
pub(super) async fn serve(call: Call<'_>) -> Result<Response<Full<Bytes>>, ApiError> {
    let Call {
        app, parts, body, ..
    } = call;
    let segments = segments_under(parts.uri.path(), PATH).unwrap_or_default();
    let method = &parts.method;
    let not_allowed = |allow: &str| crate::http::not_allowed(method, allow);
    let deploy = &app.deploy;
    let view = |v| Ok(json_response(StatusCode::OK, &json!(v)));
    match segments.as_slice() {
        [] => match *method {
            Method::GET | Method::HEAD => Ok(json_response(
                StatusCode::OK,
                &json!({"node": deploy.node(), "plugins": deploy.list().await}),
            )),
            _ => Err(not_allowed("GET, HEAD")),
        },
        [name] => match *method {
            Method::GET | Method::HEAD => view(deploy.show(name).await.map_err(api_error)?),
            Method::PUT => {
                let limit = deploy.max_upload();
                let component =
                    convert::read_body(body, &parts.headers, limit, UPLOAD_TIMEOUT).await?;
                let grants = grants(parts.uri.query())?;
                view(
                    deploy
                        .upload(name, component.to_vec(), grants)
                        .await
                        .map_err(api_error)?,
                )
            }
            Method::DELETE => {
                deploy.remove(name).await.map_err(api_error)?;
                Ok(Response::builder()
                    .status(StatusCode::NO_CONTENT)
                    .body(Full::new(Bytes::new()))
                    .unwrap_or_default())
            }
            _ => Err(not_allowed("GET, HEAD, PUT, DELETE")),
        },
        [name, action @ ("reload" | "rollback")] => match *method {
            Method::POST => {
                let done = if *action == "reload" {
                    deploy.reload(name).await
                } else {
                    deploy.rollback(name).await
                };
                view(done.map_err(api_error)?)
            }
            _ => Err(not_allowed("POST")),
        },
        _ => Err(ApiError::NotFound {
            path: parts.uri.path().to_string(),
        }),
    }
}

/// `?grants=log,sql`: the capabilities an unconfigured upload gets.
fn grants(query: Option<&str>) -> Result<Option<Vec<String>>, ApiError> {
    let mut grants = None;
    for (key, value) in convert::query_pairs(query) {
        match key.as_str() {
            "grants" => {
                grants = Some(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(str::to_string)
                        .collect(),
                );
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown query parameter `{other}`; this endpoint takes `grants`"
                )));
            }
        }
    }
    Ok(grants)
}

fn api_error(err: DeployError) -> ApiError {
    match err {
        DeployError::Refused(reason) => ApiError::PluginRefused(reason),
        DeployError::NotFound(name) => ApiError::UnknownPlugin(name),
        DeployError::NoPrevious(name) => ApiError::Conflict(format!(
            "plugin `{name}` has no previous version to roll back to"
        )),
        DeployError::Invalid(message) => ApiError::BadRequest(message),
        DeployError::Store(err) => ApiError::Unavailable(format!("the plugin store: {err}")),
    }
}

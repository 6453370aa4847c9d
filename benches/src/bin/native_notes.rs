//! The native baseline for `notes` GET by id: hyper + sqlx, the same table
//! and the same query as the plugin, no WASM. It reads the database the
//! Trellis `notes` plugin writes, so both serve identical rows.
//!
//! Usage: `native-notes ADDR sqlite:PATH` or
//! `native-notes ADDR postgres://...?options=-csearch_path%3D<schema>`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use sqlx::{PgPool, SqlitePool};
use tokio::net::TcpListener;

const QUERY: &str = "SELECT id, title, body, created_at, updated_at FROM notes WHERE id = $1";

type Note = (i64, String, String, i64, i64);

enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Db {
    async fn get(&self, id: i64) -> Result<Option<Note>, sqlx::Error> {
        match self {
            Db::Sqlite(pool) => sqlx::query_as(QUERY).bind(id).fetch_optional(pool).await,
            Db::Postgres(pool) => sqlx::query_as(QUERY).bind(id).fetch_optional(pool).await,
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:8082".into())
        .parse()?;
    let url = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: native-notes ADDR DATABASE_URL"))?;
    let db = Arc::new(if url.starts_with("sqlite:") {
        Db::Sqlite(SqlitePool::connect(&url).await?)
    } else {
        Db::Postgres(PgPool::connect(&url).await?)
    });
    let listener = TcpListener::bind(addr).await?;
    eprintln!("native-notes listening on {addr}");
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let db = db.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let db = db.clone();
                async move { Ok::<_, Infallible>(answer(&db, request.uri().path()).await) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(db: &Db, path: &str) -> Response<Full<Bytes>> {
    let id = path.strip_prefix("/notes/").and_then(|id| id.parse().ok());
    let (status, body) = match id {
        None => (
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "no route"}),
        ),
        Some(id) => match db.get(id).await {
            Ok(Some((id, title, body, created_at, updated_at))) => (
                StatusCode::OK,
                serde_json::json!({"id": id, "title": title, "body": body,
                    "created_at": created_at, "updated_at": updated_at}),
            ),
            Ok(None) => (
                StatusCode::NOT_FOUND,
                serde_json::json!({"error": "no note"}),
            ),
            Err(err) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({"error": err.to_string()}),
            ),
        },
    };
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

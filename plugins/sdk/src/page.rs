//! Pagination, the one convention every list endpoint follows (the runtime's
//! own too): `?limit=` (a default and a maximum) and `?cursor=` (opaque,
//! taken from the previous page), and a body `{"items": [...],
//! "next_cursor": "..." | null}`. The host adds `Link: <…>; rel="next"` to
//! any 2xx JSON response whose `next_cursor` is set.
//!
//! A cursor is keyset state of the plugin's choosing (say the last id and
//! timestamp), serialized, checksummed and base64url-encoded. A cursor a
//! client edited or made up is a 400, not a strange page. Cursors are
//! opaque, not secret: never put anything in one the client may not see.
//!
//! ```no_run
//! use trellis_sdk::page::{self, Page};
//! use trellis_sdk::prelude::*;
//! use trellis_sdk::{params, sql};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Note { id: i64, title: String }
//!
//! fn list(req: Request) -> Result<Response> {
//!     let page: Page<i64> = page::from_request(&req, 20, 100)?;
//!     let after = page.after.unwrap_or(0);
//!     let notes: Vec<Note> = sql::query(
//!         "SELECT id, title FROM notes WHERE id > $1 ORDER BY id LIMIT $2",
//!         &params![after, page.limit as i64],
//!     )?
//!     .decode()?;
//!     page::respond(&notes, page.limit, |n| n.id)
//! }
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Request, Response, Result};

/// What a request asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<C> {
    /// How many items, `1..=max`.
    pub limit: usize,
    /// Where the previous page ended, when this is not the first page.
    pub after: Option<C>,
}

/// Reads `?limit=` (default `default`, at most `max`) and `?cursor=`; a
/// bad limit or a cursor this plugin did not make is a 400.
pub fn from_request<C: DeserializeOwned>(
    req: &Request,
    default: usize,
    max: usize,
) -> Result<Page<C>> {
    let limit = match req.query("limit") {
        None => default,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                Error::bad_request(format!("limit must be a whole number from 1 to {max}"))
            })?,
    };
    let after = req.query("cursor").map(decode).transpose()?;
    Ok(Page { limit, after })
}

/// The page's body: `items`, and `next_cursor` from the last item when the
/// page is full (there may be more).
pub fn respond<T: Serialize, C: Serialize>(
    items: &[T],
    limit: usize,
    cursor_of: impl Fn(&T) -> C,
) -> Result<Response> {
    let next = if items.len() >= limit {
        items
            .last()
            .map(|last| encode(&cursor_of(last)))
            .transpose()?
    } else {
        None
    };
    Response::json(&serde_json::json!({ "items": items, "next_cursor": next }))
}

/// Encodes keyset state as an opaque cursor.
pub fn encode<C: Serialize>(state: &C) -> Result<String> {
    let mut bytes = serde_json::to_vec(state)
        .map_err(|e| Error::internal(format!("cannot encode a cursor: {e}")))?;
    let sum = checksum(&bytes);
    bytes.extend_from_slice(&sum.to_be_bytes());
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Decodes a cursor made by [`encode`]; anything else is a 400.
pub fn decode<C: DeserializeOwned>(cursor: &str) -> Result<C> {
    let invalid = || Error::bad_request("the cursor is not one this endpoint returned");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let split = bytes.len().checked_sub(4).ok_or_else(invalid)?;
    let (payload, sum) = bytes.split_at(split);
    if sum != checksum(payload).to_be_bytes() {
        return Err(invalid());
    }
    serde_json::from_slice(payload).map_err(|_| invalid())
}

/// FNV-1a, 32 bits, with a fixed salt: catches edits, is not a secret.
fn checksum(bytes: &[u8]) -> u32 {
    b"trellis-cursor"
        .iter()
        .chain(bytes)
        .fold(0x811c_9dc5u32, |hash, b| {
            (hash ^ u32::from(*b)).wrapping_mul(0x0100_0193)
        })
}

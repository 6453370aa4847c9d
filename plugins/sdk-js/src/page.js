// Pagination, the convention every list endpoint follows (the runtime's
// and the Rust SDK's): `?limit=` (a default and a maximum) and `?cursor=`
// (opaque, from the previous page), and a body `{"items": [...],
// "next_cursor": "..." | null}`. The host adds `Link: <…>; rel="next"`.
//
// A cursor is keyset state (say the last id) as JSON, followed by a
// FNV-1a checksum (big-endian, 4 bytes), base64url without padding: the
// same bytes the Rust SDK's `page::encode` makes, so either decodes the
// other's cursors. An edited or made-up cursor is a 400. Cursors are
// opaque, not secret.

import { BadRequest, InternalError } from "./errors.js";
import { base64url, fromBase64url, fromUtf8Strict, utf8 } from "./bytes.js";
import { Response } from "./response.js";
import { validate } from "./schema.js";

const SALT = utf8("trellis-cursor");

/** FNV-1a, 32 bits, over the salt then `bytes`. */
function checksum(bytes) {
  let hash = 0x811c9dc5;
  for (const part of [SALT, bytes]) {
    for (const byte of part) {
      hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
    }
  }
  return hash;
}

/** Keyset state (anything JSON can hold) as an opaque cursor. */
export function encodeCursor(state) {
  const text = JSON.stringify(state);
  if (text === undefined) throw new InternalError(`cannot encode a cursor from a ${typeof state}`);
  const payload = utf8(text);
  const bytes = new Uint8Array(payload.length + 4);
  bytes.set(payload);
  new DataView(bytes.buffer).setUint32(payload.length, checksum(payload));
  return base64url(bytes);
}

/**
 * The state of a cursor made by encodeCursor (or the Rust SDK), checked
 * against `schema` when given (see schema.js); anything else is a 400.
 */
export function decodeCursor(cursor, schema) {
  const invalid = () => new BadRequest("the cursor is not one this endpoint returned");
  const bytes = fromBase64url(cursor);
  if (!bytes || bytes.length < 4) throw invalid();
  const payload = bytes.subarray(0, bytes.length - 4);
  const sum = new DataView(bytes.buffer, bytes.byteOffset + payload.length, 4).getUint32(0);
  if (sum !== checksum(payload)) throw invalid();
  const text = fromUtf8Strict(payload);
  let state;
  try {
    state = JSON.parse(text);
  } catch {
    throw invalid();
  }
  if (schema !== undefined) {
    try {
      validate(state, schema);
    } catch {
      throw invalid();
    }
  }
  return state;
}

/**
 * What a request asked for: `{limit, after}`. `?limit=` is 1..=max
 * (default `defaultLimit`), `after` the decoded `?cursor=` (undefined on
 * the first page), checked against `cursor` (a schema) when given.
 */
export function pageOf(req, { defaultLimit = 20, max = 100, cursor } = {}) {
  const text = req.query("limit");
  let limit = defaultLimit;
  if (text !== undefined) {
    limit = /^\+?\d+$/.test(text) ? Number(text) : NaN;
    if (!(limit >= 1 && limit <= max)) {
      throw new BadRequest(`limit must be a whole number from 1 to ${max}`);
    }
  }
  const raw = req.query("cursor");
  return { limit, after: raw === undefined ? undefined : decodeCursor(raw, cursor) };
}

/**
 * The page's response: `items`, and `next_cursor` from the last item (via
 * `cursorOf`) when the page is full (there may be more), else null.
 */
export function pageResponse(items, limit, cursorOf) {
  const next = items.length >= limit && items.length > 0 ? encodeCursor(cursorOf(items[items.length - 1])) : null;
  return Response.json({ items, next_cursor: next });
}

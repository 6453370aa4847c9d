// Bytes and text: UTF-8, base64url, percent-decoding. Only what
// StarlingMonkey has (TextEncoder, TextDecoder): no Node APIs.

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const strict = new TextDecoder("utf-8", { fatal: true });

/** UTF-8 bytes of a string. */
export function utf8(text) {
  return encoder.encode(text);
}

/** A string from UTF-8 bytes, invalid sequences replaced. */
export function fromUtf8(bytes) {
  return decoder.decode(bytes);
}

/** A string from UTF-8 bytes, or undefined when they are not UTF-8. */
export function fromUtf8Strict(bytes) {
  try {
    return strict.decode(bytes);
  } catch {
    return undefined;
  }
}

/**
 * A body or payload as bytes: a Uint8Array as is, any other typed array or
 * ArrayBuffer viewed as bytes, a string as UTF-8, undefined/null as empty.
 */
export function toBytes(value) {
  if (value === undefined || value === null) {
    return new Uint8Array();
  }
  if (value instanceof Uint8Array) {
    return value;
  }
  if (ArrayBuffer.isView(value)) {
    return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  }
  if (value instanceof ArrayBuffer) {
    return new Uint8Array(value);
  }
  if (typeof value === "string") {
    return utf8(value);
  }
  throw new TypeError(`expected bytes or a string, got ${typeof value}`);
}

/** Header name/value pairs from an array of pairs or an object. */
export function toPairs(fields) {
  if (fields === undefined || fields === null) {
    return [];
  }
  const entries = Array.isArray(fields) ? fields : Object.entries(fields);
  return entries.map(([name, value]) => [String(name), String(value)]);
}

/** The first value of `name` in pairs, the name matched case-insensitively. */
export function findHeader(pairs, name) {
  const wanted = name.toLowerCase();
  return pairs.find(([key]) => key.toLowerCase() === wanted)?.[1];
}

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** base64url without padding (RFC 4648 §5), like Rust's URL_SAFE_NO_PAD. */
export function base64url(bytes) {
  let out = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    const chars = Math.min(4, Math.ceil(((bytes.length - i) * 8) / 6));
    for (let c = 0; c < chars; c++) {
      out += ALPHABET[(n >> (18 - 6 * c)) & 63];
    }
  }
  return out;
}

/**
 * Decodes unpadded base64url; undefined for anything the Rust decoder
 * refuses too (another alphabet, padding, a dangling character, non-zero
 * trailing bits).
 */
export function fromBase64url(text) {
  if (text.length % 4 === 1) {
    return undefined;
  }
  const out = new Uint8Array(Math.floor((text.length * 6) / 8));
  let bits = 0;
  let value = 0;
  let at = 0;
  for (const char of text) {
    const digit = ALPHABET.indexOf(char);
    if (digit < 0) {
      return undefined;
    }
    value = (value << 6) | digit;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[at++] = (value >> bits) & 0xff;
      value &= (1 << bits) - 1;
    }
  }
  return value === 0 ? out : undefined;
}

function hex(code) {
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 65 && code <= 70) return code - 55;
  if (code >= 97 && code <= 102) return code - 87;
  return -1;
}

/**
 * Percent-decodes to bytes like Rust's percent_encoding: `%XX` is a byte, a
 * `%` not followed by two hex digits stays as it is.
 */
export function percentDecodeBytes(text) {
  const raw = utf8(text);
  const out = [];
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 37 && i + 2 < raw.length && hex(raw[i + 1]) >= 0 && hex(raw[i + 2]) >= 0) {
      out.push(hex(raw[i + 1]) * 16 + hex(raw[i + 2]));
      i += 2;
    } else {
      out.push(raw[i]);
    }
  }
  return new Uint8Array(out);
}

/**
 * Decodes a query string as the host does (application/x-www-form-urlencoded:
 * `+` is a space, invalid UTF-8 replaced), into ordered pairs.
 */
export function parseQuery(query) {
  const pairs = [];
  for (const part of query.split("&")) {
    if (part === "") continue;
    const at = part.indexOf("=");
    const [name, value] = at < 0 ? [part, ""] : [part.slice(0, at), part.slice(at + 1)];
    const decode = (s) => fromUtf8(percentDecodeBytes(s.replaceAll("+", " ")));
    pairs.push([decode(name), decode(value)]);
  }
  return pairs;
}

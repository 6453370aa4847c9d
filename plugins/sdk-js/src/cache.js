// The plugin's cache (the `cache` capability): byte values shared by every
// instance on every node, with a ttl and tags. A cache that cannot reach
// Redis degrades to its in-process tier; the errors left are plugin bugs (a
// value over the host's size limit, an empty or over-long key), 500s.

import { HttpError, hostCall } from "./errors.js";
import { fromUtf8, toBytes, utf8 } from "./bytes.js";
import { disposeHandle } from "./resource.js";

/**
 * A failed cache call: a 500 (code `cache_value_too_large` or
 * `cache_invalid`) carrying the WIT error: `kind` (`too-large`, `invalid`)
 * and, for `too-large`, the host's `limit` in bytes.
 */
export class CacheError extends HttpError {
  constructor(kind, val) {
    const tooLarge = kind === "too-large";
    super(
      500,
      tooLarge
        ? `cache: the value is larger than the host's limit of ${val} bytes (cache.max_value, or the plugin's limits.max_cache_value)`
        : `cache: invalid call: ${val}`,
      { code: tooLarge ? "cache_value_too_large" : "cache_invalid" },
    );
    this.name = "CacheError";
    this.kind = kind;
    if (tooLarge) this.limit = Number(val);
  }
}

/** Runs a host call, its WIT error thrown as this capability's error. */
const call = (f) => hostCall(f, (p) => new CacheError(p.tag, p.val));

/** `{ttlMs, tags}` as the host's entry-options (ttl in whole ms, at least 1). */
function entryOptions({ ttlMs, tags = [] } = {}) {
  if (typeof ttlMs !== "number" || !(ttlMs >= 0)) {
    throw new TypeError("cache options need `ttlMs`: the time to live in milliseconds");
  }
  return { ttlMs: Math.min(Math.max(1, Math.floor(ttlMs)), 0xffffffff), tags: [...tags] };
}

/** JSON bytes of a value, or a 500 naming the key. */
function jsonBytes(key, value) {
  const text = JSON.stringify(value);
  if (text === undefined) throw new HttpError(500, `cache: cannot serialize the value of \`${key}\``);
  return utf8(text);
}

/** JSON parsed from bytes, or undefined when it does not parse. */
function parsed(bytes) {
  try {
    return JSON.parse(fromUtf8(bytes));
  } catch {
    return undefined;
  }
}

/** The cache helpers over the host's `trellis:plugin/cache` interface. */
export function makeCache(host) {
  const cache = {
    /** One key's value (a Uint8Array), or undefined on a miss. */
    get: (key) => call(() => host.get(key)),

    /** Many keys at once; values (or undefined) in key order. */
    getMany: (keys) => call(() => host.getMany([...keys])),

    /** Stores bytes (a string as UTF-8) with `{ttlMs, tags}`. */
    set: (key, value, options) => call(() => host.set(key, toBytes(value), entryOptions(options))),

    /** Removes a key on every node. */
    delete: (key) => call(() => host.delete(key)),

    /**
     * Drops every entry tagged `tag`, and every cached HTTP response whose
     * route declares the tag, on every node.
     */
    invalidateTag: (tag) => call(() => host.invalidateTag(tag)),

    /** A value stored with setJson, or undefined (also when it does not parse). */
    getJson(key) {
      const bytes = cache.get(key);
      return bytes === undefined ? undefined : parsed(bytes);
    },

    /** Stores `value` as JSON. */
    setJson: (key, value, options) => cache.set(key, jsonBytes(key, value), options),

    /**
     * The byte-level read-through: `{hit: bytes}`, `{absent: true}` (a
     * negative entry) or `{loader}`: load the value, then
     * `loader.fill(bytes | undefined, options)` or `loader.fail(message)`.
     */
    fetch(key) {
      const lookup = call(() => host.fetch(key));
      switch (lookup.tag) {
        case "hit":
          return { hit: lookup.val };
        case "absent":
          return { absent: true };
        default: {
          const raw = lookup.val;
          return {
            loader: {
              fill: (value, options) =>
                call(() => raw.fill(value === undefined ? undefined : toBytes(value), entryOptions(options))),
              fail: (message) => {
                raw.fail(String(message));
                disposeHandle(raw);
              },
            },
          };
        }
      }
    },

    /**
     * Read-through with stampede protection: a hit is decoded from JSON; on
     * a miss one caller per node runs `load()` while the others wait. A
     * value is cached as JSON and returned; undefined or null is cached as
     * a negative entry (later calls get undefined until it expires); a
     * throw is reported to the waiting callers and rethrown. A cached value
     * that no longer parses is loaded again and replaced.
     */
    getOrLoad(key, options, load) {
      const found = cache.fetch(key);
      if (found.hit !== undefined) {
        const value = parsed(found.hit);
        if (value !== undefined) return value;
        const fresh = load();
        if (fresh === undefined || fresh === null) cache.delete(key);
        else cache.setJson(key, fresh, options);
        return fresh ?? undefined;
      }
      if (found.absent) return undefined;
      let value;
      try {
        value = load();
      } catch (err) {
        found.loader.fail(err instanceof Error ? err.message : String(err));
        throw err;
      }
      if (value === undefined || value === null) {
        found.loader.fill(undefined, options);
        return undefined;
      }
      found.loader.fill(jsonBytes(key, value), options);
      return value;
    },
  };
  return cache;
}

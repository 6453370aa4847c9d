// A key-value store over the cache capability, and a read-through cached
// computation, in JavaScript on the SDK (../sdk-js). Routes:
//   PUT    /js-cache/values/{key}?ttl_ms=N  store the body (default 60 s)
//   GET    /js-cache/values/{key}           the stored body, or 404
//   DELETE /js-cache/values/{key}           drop it (on every node)
//   GET    /js-cache/squares/{n}            the sum of squares 1..n, cached
//                                           for 60 s; `x-cache: hit|miss`
// A value over the host's limit is a 413 here (the SDK's default for the
// cache's `too-large` error is a 500: a plugin bug).
import { App, BadRequest, CacheError, ContentTooLarge, NotFound, Response } from "../sdk-js/src/index.js";
import * as cache from "trellis:plugin/cache@0.1.7";

export const app = new App("js-cache", "0.1.0", { cache });
const u32 = (n) => Number.isInteger(n) && n >= 1 && n <= 0xffffffff;

app.put("/js-cache/values/{key}", (req, { cache }) => {
  const ttlMs = req.query("ttl_ms", "int") ?? 60_000;
  if (!u32(ttlMs)) throw new BadRequest(`invalid query parameter \`ttl_ms\`: ${ttlMs}`);
  try {
    cache.set(req.param("key"), req.body, { ttlMs });
  } catch (err) {
    if (err instanceof CacheError && err.kind === "too-large") {
      throw new ContentTooLarge(`the value is larger than the cache allows (${err.limit} bytes)`);
    }
    throw err;
  }
  return Response.noContent();
});

app.get("/js-cache/values/{key}", (req, { cache }) => {
  const value = cache.get(req.param("key"));
  if (value === undefined) throw new NotFound(`no value for \`${req.param("key")}\``);
  return Response.bytes(value);
});

app.delete("/js-cache/values/{key}", (req, { cache }) => cache.delete(req.param("key")));

app.get("/js-cache/squares/{n}", (req, { cache }) => {
  const n = req.param("n", "int");
  if (n < 0 || n > 1_000_000) throw new BadRequest(`invalid path parameter \`n\`: ${n} (0 to 1000000)`);
  let state = "hit";
  const value = cache.getOrLoad(`squares:${n}`, { ttlMs: 60_000, tags: ["squares"] }, () => {
    state = "miss";
    let sum = 0n;
    for (let i = 1n; i <= BigInt(n); i++) sum += i * i;
    return { n, sum: sum.toString() };
  });
  return Response.json(value).withHeader("x-cache", state);
});

export const { manifest, httpHandler } = app.exports();

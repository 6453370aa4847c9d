// A key-value store over the cache capability, and a read-through cached
// computation, in JavaScript (componentize-js). Routes:
//   PUT    /js-cache/values/{key}?ttl_ms=N  store the body (default 60 s)
//   GET    /js-cache/values/{key}           the stored body, or 404
//   DELETE /js-cache/values/{key}           drop it (on every node)
//   GET    /js-cache/squares/{n}            the sum of squares 1..n, cached
//                                           for 60 s; `x-cache: hit|miss`
// A cache call that fails throws an Error whose `payload` is the WIT
// `error` variant: `{ tag: "too-large", val: <limit> }` or
// `{ tag: "invalid", val: <why> }`.
import { get, set, delete as remove } from "trellis:plugin/cache@0.1.7";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const ROUTES = [
  ["PUT", "/js-cache/values/{key}", putValue],
  ["GET", "/js-cache/values/{key}", getValue],
  ["DELETE", "/js-cache/values/{key}", deleteValue],
  ["GET", "/js-cache/squares/{n}", squares],
];

export const manifest = {
  describe() {
    return {
      name: "js-cache",
      version: "0.1.0",
      routes: ROUTES.map(([method, path]) => ({ method, path, options: [] })),
      capabilities: ["cache"],
    };
  },
};

export const httpHandler = {
  handle(req) {
    const [, , handler] = ROUTES[req.route];
    try {
      return handler(req, new Map(req.params), new Map(req.query));
    } catch (err) {
      return problemFor(err, req.requestId);
    }
  },
};

function putValue(req, params, query) {
  const ttl = query.has("ttl_ms") ? Number(query.get("ttl_ms")) : 60000;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > 4294967295) {
    throw new Problem(400, `invalid query parameter \`ttl_ms\`: ${query.get("ttl_ms")}`);
  }
  set(params.get("key"), req.body, { ttlMs: ttl, tags: [] });
  return { status: 204, headers: [], body: new Uint8Array() };
}

function getValue(_req, params) {
  const value = get(params.get("key"));
  if (value === undefined) {
    throw new Problem(404, `no value for \`${params.get("key")}\``);
  }
  return { status: 200, headers: [["content-type", "application/octet-stream"]], body: value };
}

function deleteValue(_req, params) {
  remove(params.get("key"));
  return { status: 204, headers: [], body: new Uint8Array() };
}

function squares(_req, params) {
  const n = Number(params.get("n"));
  if (!Number.isInteger(n) || n < 0 || n > 1000000) {
    throw new Problem(400, `invalid path parameter \`n\`: ${params.get("n")} (0 to 1000000)`);
  }
  const key = `squares:${n}`;
  const cached = get(key);
  if (cached !== undefined) {
    return json(200, JSON.parse(decoder.decode(cached)), "hit");
  }
  let sum = 0n;
  for (let i = 1n; i <= BigInt(n); i++) {
    sum += i * i;
  }
  const value = { n, sum: sum.toString() };
  set(key, encoder.encode(JSON.stringify(value)), { ttlMs: 60000, tags: ["squares"] });
  return json(200, value, "miss");
}

class Problem extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

function problemFor(err, requestId) {
  if (err instanceof Problem) {
    return problem(err.status, err.message, requestId);
  }
  const payload = err && err.payload;
  if (payload && payload.tag === "too-large") {
    return problem(413, `the value is larger than the cache allows (${payload.val} bytes)`, requestId);
  }
  if (payload && payload.tag === "invalid") {
    return problem(400, payload.val, requestId);
  }
  return problem(500, String(err), requestId);
}

const TITLES = { 400: "Bad Request", 404: "Not Found", 413: "Content Too Large", 500: "Internal Server Error" };

function problem(status, detail, requestId) {
  const title = TITLES[status] ?? "Error";
  const body = {
    type: "about:blank",
    title,
    status,
    detail,
    code: title.toLowerCase().replaceAll(" ", "_"),
    request_id: requestId,
  };
  return json(status, body, null, "application/problem+json");
}

function json(status, value, cache, type = "application/json") {
  const headers = [["content-type", type]];
  if (cache) {
    headers.push(["x-cache", cache]);
  }
  return { status, headers, body: encoder.encode(JSON.stringify(value)) };
}

// Outgoing HTTP requests to the hosts the operator allows
// (`allowed_outbound_hosts`, the `outbound-http` capability), over the
// host's `trellis:plugin/outbound-http` interface. StarlingMonkey's own
// `fetch` is left out of the component: this is the way out.

import { HttpError, hostPayload } from "./errors.js";
import { findHeader, fromUtf8, toBytes, toPairs, utf8 } from "./bytes.js";

/**
 * A refused, failed or timed-out request, as in the Rust SDK: 502
 * `bad_gateway` (503 `upstream_busy` when the plugin's concurrency is used
 * up, 504 `gateway_timeout` on a timeout, 500 for a request that cannot be
 * sent), naming the URL. `kind` is the WIT error.
 */
export class OutboundError extends HttpError {
  constructor(url, kind, val) {
    const [status, code, detail] = {
      denied: [502, "bad_gateway", `not allowed: ${val}`],
      invalid: [500, "internal_error", `invalid request: ${val}`],
      connect: [502, "bad_gateway", `cannot connect: ${val}`],
      timeout: [504, "gateway_timeout", "no answer in time"],
      "too-large": [502, "bad_gateway", `the response is larger than ${val} bytes`],
      limited: [503, "upstream_busy", "too many outgoing requests in flight"],
    }[kind] ?? [502, "bad_gateway", String(val)];
    super(status, `${url}: ${detail}`, { code });
    this.name = "OutboundError";
    this.kind = kind;
  }
}

/** A response, read whole. */
export class HttpResponse {
  constructor(url, raw) {
    this.url = url;
    this.status = raw.status;
    /** [name, value] pairs; names are lower-case. */
    this.headers = raw.headers;
    this.body = raw.body;
  }

  /** Whether the status is 2xx. */
  get ok() {
    return this.status >= 200 && this.status < 300;
  }

  /** The first value of a header (any case). */
  header(name) {
    return findHeader(this.headers, name);
  }

  /** The body as text (invalid UTF-8 replaced). */
  text() {
    return fromUtf8(this.body);
  }

  /** The body as JSON; a 502 naming the problem when it is not. */
  json() {
    try {
      return JSON.parse(this.text());
    } catch (err) {
      throw new HttpError(502, `${this.url}: the upstream answered with JSON that does not parse: ${err.message}`, {
        code: "bad_gateway",
      });
    }
  }

  /** Itself when the status is below 400; otherwise a 502 naming the status. */
  errorForStatus() {
    if (this.status < 400) return this;
    throw new HttpError(502, `${this.url}: the upstream answered ${this.status}`, { code: "bad_gateway" });
  }
}

/** The outbound HTTP helpers over the host's `trellis:plugin/outbound-http` interface. */
export function makeHttp(host) {
  const http = {
    /**
     * Sends a request and waits for the whole response (redirects
     * followed). Options: `method` (GET), `headers` (object or pairs),
     * `body` (bytes or a string) or `json` (a value sent as JSON).
     */
    fetch(url, { method = "GET", headers, body, json } = {}) {
      const pairs = toPairs(headers);
      let bytes = toBytes(body);
      if (json !== undefined) {
        bytes = utf8(JSON.stringify(json));
        if (findHeader(pairs, "content-type") === undefined) pairs.push(["content-type", "application/json"]);
      }
      const request = { method: method.toUpperCase(), url: String(url), headers: pairs, body: bytes };
      try {
        return new HttpResponse(request.url, host.fetch(request));
      } catch (err) {
        const payload = hostPayload(err);
        if (!payload) throw err;
        throw new OutboundError(request.url, payload.tag, payload.val);
      }
    },

    /** GETs JSON: a 502 for a status of 400 or more or a body that is not JSON. */
    getJson(url, { headers } = {}) {
      const pairs = toPairs(headers);
      if (findHeader(pairs, "accept") === undefined) pairs.push(["accept", "application/json"]);
      return http.fetch(url, { headers: pairs }).errorForStatus().json();
    },

    /**
     * POSTs `value` as JSON and returns the JSON answer (undefined for an
     * empty body); a 502 for a status of 400 or more.
     */
    postJson(url, value, { headers } = {}) {
      const pairs = toPairs(headers);
      if (findHeader(pairs, "accept") === undefined) pairs.push(["accept", "application/json"]);
      const response = http.fetch(url, { method: "POST", headers: pairs, json: value }).errorForStatus();
      return response.body.length === 0 ? undefined : response.json();
    },
  };
  return http;
}

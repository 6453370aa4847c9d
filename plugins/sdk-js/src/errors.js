// Handler errors and their problem+json form (RFC 9457), exactly as the
// Rust SDK writes them: `{type, title, status, detail, code, request_id}`,
// `code` defaulting to the status title in snake case (`not_found`).

import { Response } from "./response.js";

const TITLES = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  410: "Gone",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Content",
  429: "Too Many Requests",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

/** The reason phrase the problem body's `title` carries. */
export function title(status) {
  return TITLES[status] ?? (status < 500 ? "Client Error" : "Server Error");
}

/**
 * An error a handler throws; it becomes an `application/problem+json`
 * response with this status (400..=599, anything else is 500), a title
 * derived from it, the detail, the code and the request id.
 */
export class HttpError extends Error {
  constructor(status, detail, { code, headers } = {}) {
    super(String(detail));
    this.name = "HttpError";
    this.status = Number.isInteger(status) && status >= 400 && status <= 599 ? status : 500;
    this.detail = String(detail);
    this.code = code;
    this.headers = [...(headers ?? [])];
  }

  /** Adds a header to the error response (e.g. `retry-after`). */
  withHeader(name, value) {
    this.headers.push([String(name), String(value)]);
    return this;
  }

  /** Sets the machine-readable `code` (default: the title in snake case). */
  withCode(code) {
    this.code = code;
    return this;
  }

  /**
   * Groups this error (a 5xx) under `fingerprint` in the runtime's error
   * aggregation; the runtime removes the header before the client sees it.
   */
  withFingerprint(fingerprint) {
    return this.withHeader("x-trellis-fingerprint", fingerprint);
  }

  /** The problem+json response for this error. */
  toResponse(requestId) {
    const heading = title(this.status);
    const body = {
      type: "about:blank",
      title: heading,
      status: this.status,
      detail: this.detail,
      code: this.code ?? heading.toLowerCase().replaceAll(" ", "_"),
      request_id: requestId,
    };
    const response = Response.json(body, this.status).withHeader("content-type", "application/problem+json");
    for (const [name, value] of this.headers) {
      response.withHeader(name, value);
    }
    return response;
  }

  toString() {
    return `${this.status} ${title(this.status)}: ${this.detail}`;
  }
}

/** Makes `class X extends HttpError` with a fixed status. */
function fixed(status, name) {
  const cls = class extends HttpError {
    constructor(detail, options) {
      super(status, detail, options);
      this.name = name;
    }
  };
  Object.defineProperty(cls, "name", { value: name });
  return cls;
}

export const BadRequest = fixed(400, "BadRequest");
export const Unauthorized = fixed(401, "Unauthorized");
export const Forbidden = fixed(403, "Forbidden");
export const NotFound = fixed(404, "NotFound");
export const MethodNotAllowed = fixed(405, "MethodNotAllowed");
export const Conflict = fixed(409, "Conflict");
export const Gone = fixed(410, "Gone");
export const ContentTooLarge = fixed(413, "ContentTooLarge");
export const UnsupportedMediaType = fixed(415, "UnsupportedMediaType");
export const Unprocessable = fixed(422, "Unprocessable");
export const TooManyRequests = fixed(429, "TooManyRequests");
export const InternalError = fixed(500, "InternalError");
export const NotImplemented = fixed(501, "NotImplemented");
export const BadGateway = fixed(502, "BadGateway");
export const ServiceUnavailable = fixed(503, "ServiceUnavailable");
export const GatewayTimeout = fixed(504, "GatewayTimeout");

/**
 * Any thrown value as an HttpError: itself, or a 500 naming what was
 * thrown (a TypeError from a bug, a string, ...).
 */
export function asHttpError(err) {
  if (err instanceof HttpError) {
    return err;
  }
  const what = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return new InternalError(`unexpected error: ${what}`);
}

/**
 * The WIT error variant a host call threw (componentize-js throws an Error
 * whose `payload` is `{tag, val}`), or undefined for any other exception.
 */
export function hostPayload(err) {
  const payload = err?.payload;
  return payload && typeof payload.tag === "string" ? payload : undefined;
}

/**
 * Runs the host call `f`; a WIT error it throws is rethrown as
 * `toError(payload)` (the capability's own error class), anything else
 * as it was.
 */
export function hostCall(f, toError) {
  try {
    return f();
  } catch (err) {
    const payload = hostPayload(err);
    if (!payload) throw err;
    throw toError(payload);
  }
}

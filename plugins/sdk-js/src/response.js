// The response a handler builds (or lets the SDK build: a handler may also
// return a plain value, see `Response.from`).

import { findHeader, fromUtf8, toBytes, toPairs } from "./bytes.js";

export class Response {
  /** An empty response with `status`. */
  constructor(status = 200, { headers, body } = {}) {
    this.status = status;
    this.headers = toPairs(headers);
    this.body = toBytes(body);
  }

  /** `status` (200) with `value` serialized as JSON. */
  static json(value, status = 200) {
    const text = JSON.stringify(value);
    if (text === undefined) {
      throw new TypeError(`cannot serialize a ${typeof value} as a JSON response`);
    }
    return new Response(status, { headers: [["content-type", "application/json"]], body: text });
  }

  /** `status` (200) with a `text/plain` body. */
  static text(text, status = 200) {
    return new Response(status, { headers: [["content-type", "text/plain; charset=utf-8"]], body: String(text) });
  }

  /** `status` (200) with raw bytes and a content type. */
  static bytes(bytes, contentType = "application/octet-stream", status = 200) {
    return new Response(status, { headers: [["content-type", contentType]], body: bytes });
  }

  /** 204 No Content. */
  static noContent() {
    return new Response(204);
  }

  /** 201 Created with `location` and, when given, `value` as JSON. */
  static created(location, value) {
    const response = value === undefined ? new Response(201) : Response.json(value, 201);
    return response.withHeader("location", location);
  }

  /**
   * What a handler returned, as a Response: a Response as is, undefined or
   * null as 204, a string as text, bytes as application/octet-stream, any
   * other value as JSON.
   */
  static from(value) {
    if (value instanceof Response) return value;
    if (value === undefined || value === null) return Response.noContent();
    if (typeof value === "string") return Response.text(value);
    if (value instanceof Uint8Array) return Response.bytes(value);
    return Response.json(value);
  }

  /** Replaces the status. */
  withStatus(status) {
    this.status = status;
    return this;
  }

  /** Adds a header (a `content-type` replaces the one there). */
  withHeader(name, value) {
    if (name.toLowerCase() === "content-type") {
      this.headers = this.headers.filter(([key]) => key.toLowerCase() !== "content-type");
    }
    this.headers.push([String(name), String(value)]);
    return this;
  }

  /** Replaces the body (bytes or a string, as UTF-8). */
  withBody(body) {
    this.body = toBytes(body);
    return this;
  }

  /** The first value of a header (name matched case-insensitively). */
  header(name) {
    return findHeader(this.headers, name);
  }

  /** The body as text (invalid UTF-8 replaced). */
  text() {
    return fromUtf8(this.body);
  }

  /** The body parsed as JSON (a problem+json body too). */
  json() {
    return JSON.parse(this.text());
  }

  /** The `types.response` record the host reads. */
  toRaw() {
    return { status: this.status, headers: this.headers, body: this.body };
  }
}

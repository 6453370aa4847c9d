// The request a handler receives, with typed access to its parts. A bad
// value is a 400 naming the parameter, as in the Rust SDK.

import { BadRequest, InternalError } from "./errors.js";
import { findHeader, fromUtf8Strict } from "./bytes.js";
import { validate } from "./schema.js";

/**
 * Parsers for `req.param(name, type)`, `req.query(name, type)` and
 * `config.get(key, type)`: each returns the value or undefined when the
 * text is not one.
 */
const PARSERS = {
  string: (text) => text,
  int: (text) => {
    if (!/^[+-]?\d+$/.test(text)) return undefined;
    const n = Number(text);
    return Number.isSafeInteger(n) ? n : undefined;
  },
  number: (text) => {
    const n = Number(text);
    return text.trim() !== "" && Number.isFinite(n) ? n : undefined;
  },
  bool: (text) => ({ true: true, false: false })[text],
};

/**
 * `text` parsed as `type` (a name in PARSERS or a function returning the
 * value, or undefined for a bad one); `bad()` builds the error otherwise.
 */
export function parseAs(text, type, bad) {
  const parse = typeof type === "function" ? type : PARSERS[type];
  if (!parse) {
    throw new TypeError(`unknown parameter type \`${type}\` (use ${Object.keys(PARSERS).join(", ")} or a function)`);
  }
  const value = parse(text);
  if (value === undefined) throw bad();
  return value;
}

export class Request {
  /** A request from the host's `types.request` record. */
  constructor(raw) {
    this.raw = raw;
    /** The upper-case method, e.g. `GET`. */
    this.method = raw.method;
    /** The path as sent, without the query string. */
    this.path = raw.path;
    /** The request id (`x-request-id`), for logs and error bodies. */
    this.requestId = raw.requestId;
    /** Path parameters in pattern order, percent-decoded: [name, value] pairs. */
    this.params = raw.params;
    /** Query pairs in the order they were sent, decoded. */
    this.queryPairs = raw.query;
    /** Headers with lower-case names: [name, value] pairs. */
    this.headers = raw.headers;
    /** The raw body. */
    this.body = raw.body;
  }

  /**
   * A path parameter, as a string or parsed as `type` ("int", "number",
   * "bool" or a function); a bad value is a 400 naming the parameter.
   */
  param(name, type = "string") {
    const pair = this.params.find(([key]) => key === name);
    if (!pair) {
      throw new InternalError(`the route has no path parameter \`${name}\``);
    }
    return parseAs(pair[1], type, () => new BadRequest(`invalid path parameter \`${name}\`: \`${pair[1]}\``));
  }

  /**
   * The first value of a query parameter, or undefined when absent;
   * parsed as `type` when given, a bad value a 400 naming the parameter.
   */
  query(name, type = "string") {
    const pair = this.queryPairs.find(([key]) => key === name);
    if (!pair) return undefined;
    return parseAs(pair[1], type, () => new BadRequest(`invalid query parameter \`${name}\`: \`${pair[1]}\``));
  }

  /** Every value of a query parameter, in order. */
  queryAll(name) {
    return this.queryPairs.filter(([key]) => key === name).map(([, value]) => value);
  }

  /**
   * The first value of a header (any case), or undefined; parsed as `type`
   * when given, a bad value a 400 naming the header.
   */
  header(name, type = "string") {
    const value = findHeader(this.headers, name);
    if (value === undefined) return undefined;
    return parseAs(value, type, () => new BadRequest(`invalid header \`${name}\`: \`${value}\``));
  }

  /** The body as UTF-8 text; invalid UTF-8 is a 400. */
  text() {
    const text = fromUtf8Strict(this.body);
    if (text === undefined) throw new BadRequest("the body is not UTF-8");
    return text;
  }

  /**
   * The body parsed as JSON; with a schema (see schema.js) checked against
   * it, absent optional fields filled with their defaults. Invalid JSON or
   * a wrong shape is a 400 that names the field.
   */
  json(schema) {
    let value;
    try {
      value = JSON.parse(this.text());
    } catch (err) {
      if (err instanceof BadRequest) throw err;
      throw new BadRequest(`invalid JSON: ${err.message}`);
    }
    return schema === undefined ? value : validate(value, schema);
  }
}

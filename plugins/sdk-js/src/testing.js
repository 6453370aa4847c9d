// Unit tests for an app under Node, without a server or WebAssembly:
//
//   import { TestClient } from "<sdk>/src/testing.js";
//   const { app } = await import("./app.js");   // after the testing module
//   const client = new TestClient(app, { config: { greeting: "Hi" } });
//   const res = await client.post("/notes", { json: { title: "a" } });
//   assert.equal(res.status, 201);
//
// Importing this module registers hooks so that the app's
// `trellis:plugin/...` imports load (import the app after it, or run node
// with `--import <sdk>/src/testing/register.js`). A TestClient routes
// requests like the host and runs them against a fake host (fakes.js).

import "./testing/register.js";
import { activate, fakeInterfaces } from "./testing/host.js";
import { FakeHost, hostError } from "./testing/fakes.js";
import { engine } from "./testing/sqlite.js";
import { route } from "./router.js";
import { findHeader, fromUtf8, fromUtf8Strict, parseQuery, percentDecodeBytes, toBytes, toPairs } from "./bytes.js";
import { BadRequest, HttpError, NotFound } from "./errors.js";
import { Response } from "./response.js";
import { fromValue, toValue } from "./sql.js";

export { fakeInterfaces, hostError };

/** The SQLite engine the fakes use: `node:sqlite` or `sql.js`. */
export const sqliteEngine = engine.name;

/**
 * A response a TestClient got: a Response (`status`, `headers` as
 * [name, value] pairs, `body` bytes, `header()`, `text()`, `json()`).
 */
export class TestResponse extends Response {
  constructor(raw) {
    super(raw.status, { headers: raw.headers, body: raw.body });
  }
}

export class TestClient {
  /**
   * A client of `app` over a fresh fake host (an in-memory SQLite with the
   * app's sqlite migrations applied, an empty cache and job queue).
   * Options: `config` (settings), `fetch` (answers outgoing requests:
   * `(req) => ({status, headers, body | json})`), `maxCacheValue` (bytes),
   * `maxAttempts` (a job kind's default).
   */
  constructor(app, options = {}) {
    this.app = app;
    this.host = new FakeHost(app, options);
    this.exports = app.exports();
  }

  /** Runs `fn` with this client's fake host behind the interfaces. */
  within(fn) {
    const restore = activate(this.host);
    try {
      return fn();
    } finally {
      this.host.endCall();
      restore();
    }
  }

  /**
   * Sends `method target` (a path with an optional query string) through
   * the app's routes as the host would, with options `json` (a value sent
   * as JSON), `body` (bytes or a string), `headers` (object or pairs),
   * `requestId`.
   */
  async request(method, target, { json, body, headers, requestId = "test-request" } = {}) {
    const upper = method.toUpperCase();
    const at = target.indexOf("?");
    const path = at < 0 ? target : target.slice(0, at);
    const pairs = toPairs(headers).map(([name, value]) => [name.toLowerCase(), value]);
    let bytes = toBytes(body);
    if (json !== undefined) {
      bytes = toBytes(JSON.stringify(json));
      if (findHeader(pairs, "content-type") === undefined) pairs.push(["content-type", "application/json"]);
    }
    const routed = route(this.app.routes, upper, path);
    let raw;
    if (routed.found === undefined) {
      const error = routed.allow
        ? new HttpError(405, `${upper} is not allowed on ${path}`).withHeader("allow", routed.allow.join(", "))
        : new NotFound(`no route matches ${path}`);
      raw = error.toResponse(requestId).toRaw();
    } else {
      const params = [];
      for (const [name, value] of routed.params) {
        const decoded = fromUtf8Strict(percentDecodeBytes(value));
        if (decoded === undefined) {
          return new TestResponse(
            new BadRequest(`path parameter \`${name}\` is not UTF-8 once percent-decoded`).toResponse(requestId).toRaw(),
          );
        }
        params.push([name, decoded]);
      }
      const request = {
        route: routed.found,
        method: upper,
        path,
        params,
        query: at < 0 ? [] : parseQuery(target.slice(at + 1)),
        headers: pairs,
        body: bytes,
        requestId,
      };
      raw = this.within(() => this.exports.httpHandler.handle(request));
    }
    const response = new TestResponse(raw);
    if (!response.headers.some(([name]) => name.toLowerCase() === "x-request-id")) {
      response.headers.push(["x-request-id", requestId]);
    }
    if (upper === "HEAD") response.body = new Uint8Array();
    return response;
  }

  get(target, options) {
    return this.request("GET", target, options);
  }

  head(target, options) {
    return this.request("HEAD", target, options);
  }

  post(target, options) {
    return this.request("POST", target, options);
  }

  put(target, options) {
    return this.request("PUT", target, options);
  }

  patch(target, options) {
    return this.request("PATCH", target, options);
  }

  delete(target, options) {
    return this.request("DELETE", target, options);
  }

  /** Rows of a statement on the fake database, as objects (to set up or check state). */
  query(statement, params = []) {
    const { columns, rows } = this.host.interfaces.sql.query(statement, params.map(toValue), "primary");
    return rows.map((row) => Object.fromEntries(columns.map((c, i) => [c, fromValue(row[i])])));
  }

  /** Runs a statement on the fake database; the number of rows it changed. */
  execute(statement, params = []) {
    return Number(this.host.interfaces.sql.execute(statement, params.map(toValue)));
  }

  /** Moves the fake clock (cache ttls, leases, job delays) forward. */
  advance(ms) {
    this.host.offsetMs += ms;
  }

  /** Captured log events: `{level, message, fields}`. */
  get logs() {
    return this.host.logs;
  }

  /** Captured spans: `{name, parent, attributes, events, error, ended}`. */
  get spans() {
    return this.host.spans;
  }

  /** Outgoing requests the app sent: `{method, url, headers, body}`. */
  get outbound() {
    return this.host.requests;
  }

  /** Tags invalidated so far, in order. */
  get invalidatedTags() {
    return this.host.invalidatedTags;
  }

  /** The fake cache's live entries: key -> `{value, tags, expiresAt}`. */
  get cacheEntries() {
    for (const key of [...this.host.cacheEntries.keys()]) this.host.entry(key);
    return this.host.cacheEntries;
  }

  /**
   * Every job enqueued (and committed) so far: `{id, kind, payload,
   * attempt, maxAttempts, idempotencyKey, queue, priority, finished,
   * results, json()}`; `finished` is undefined while it waits, else
   * `completed` or `discarded`.
   */
  get jobs() {
    return this.host.queue.map((job) => ({ ...job, json: () => JSON.parse(fromUtf8(job.payload)) }));
  }

  /**
   * Runs the jobs that are due (the fake clock) until none is, like a
   * worker: a failed attempt is retried until its attempts run out, a
   * `retryIn`/`snooze` waits for the clock (see advance), a fatal error
   * discards it. Returns each attempt: `{id, kind, attempt, ok, result,
   * error}` (`error` the job-error variant). At most `limit` attempts.
   */
  runJobs({ limit = 1000 } = {}) {
    const attempts = [];
    for (;;) {
      const now = this.host.now();
      const due = this.host.queue
        .filter((job) => !job.finished && job.dueAt <= now)
        .sort((a, b) => b.priority - a.priority || a.dueAt - b.dueAt || a.seq - b.seq)[0];
      if (!due) return attempts;
      if (attempts.length >= limit) throw new Error(`runJobs: more than ${limit} attempts (a job that keeps snoozing?)`);
      attempts.push(this.attempt(due));
    }
  }

  /** One attempt at a queued job. */
  attempt(job) {
    const snoozed = job.snoozed;
    job.snoozed = false;
    if (!snoozed) job.attempt += 1;
    const raw = {
      id: job.id,
      kind: job.kind,
      payload: job.payload,
      attempt: job.attempt,
      maxAttempts: job.maxAttempts,
      idempotencyKey: job.idempotencyKey,
      enqueuedAt: BigInt(job.enqueuedAt),
    };
    const outcome = { id: job.id, kind: job.kind, attempt: job.attempt };
    try {
      outcome.result = this.within(() => this.exports.jobHandler.run(raw));
      outcome.ok = true;
      job.finished = "completed";
    } catch (err) {
      if (!err?.payload) throw err;
      outcome.ok = false;
      outcome.error = err.payload;
      const { tag, val } = err.payload;
      if (tag === "snooze") {
        job.snoozed = true;
        job.dueAt = this.host.now() + Number(val);
      } else if (tag === "fatal" || job.attempt >= job.maxAttempts) {
        job.finished = "discarded";
      } else {
        job.dueAt = this.host.now() + (tag === "retry-in" ? Number(val.delayMs) : 0);
      }
    }
    job.results.push(outcome);
    return outcome;
  }

  /** Enqueues the job of schedule `name` now, as its cron tick would. */
  tick(name) {
    const schedule = this.app.scheduleList.find((s) => s.name === name);
    if (!schedule) throw new Error(`the app has no schedule \`${name}\``);
    return this.within(() => this.host.interfaces.jobs.enqueue(schedule.kind, schedule.payload, {}));
  }
}

// The App: a plugin's routes, migrations, job kinds and schedules, the
// capabilities it asks for, and the exports componentize-js builds the
// component from.
//
// componentize-js imports every interface of the plugin's own world, and
// the runtime refuses a component that imports a capability it was not
// granted, so the SDK imports none: the app's file imports the interfaces
// its world has and hands them over, and the SDK wraps them:
//
//   import * as sql from "trellis:plugin/sql@0.1.7";
//   const app = new App("notes", "0.1.0", { sql });
//   app.get("/notes/{id}", (req, { sql }) => sql.queryOne(...));
//   export const { manifest, httpHandler, migrations } = app.exports();

import { InternalError, asHttpError } from "./errors.js";
import { Request } from "./request.js";
import { Response } from "./response.js";
import { parsePattern } from "./router.js";
import { makeSql } from "./sql.js";
import { makeCache } from "./cache.js";
import { Job, JobError, makeJobs, payloadBytes } from "./jobs.js";
import { makeLock } from "./lock.js";
import { makeConfig } from "./config.js";
import { makeLog } from "./log.js";
import { makeTrace } from "./trace.js";
import { makeHttp } from "./http.js";

/**
 * The interfaces an App accepts: the key it is passed under, the helpers
 * made from it, and the capability the manifest declares for it (the
 * operator's grant; `trace` needs none).
 */
const INTERFACES = {
  sql: { make: makeSql, capability: "sql", wit: "sql" },
  cache: { make: makeCache, capability: "cache", wit: "cache" },
  jobs: { make: makeJobs, capability: "jobs", wit: "jobs" },
  lock: { make: makeLock, capability: "lock", wit: "lock" },
  config: { make: makeConfig, capability: "config", wit: "config" },
  log: { make: makeLog, capability: "log", wit: "log" },
  trace: { make: makeTrace, capability: undefined, wit: "trace" },
  http: { make: makeHttp, capability: "outbound-http", wit: "outbound-http" },
};

const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/**
 * Helpers for an interface the app was not given: any use is a 500 that
 * says how to give it.
 */
function missing(key) {
  const { wit } = INTERFACES[key];
  const fail = () => {
    throw new InternalError(
      `this plugin uses \`${key}\` but its App was not given the interface: add ` +
        `\`import trellis:plugin/${wit}@0.1.7;\` to wit/world.wit, ` +
        `\`import * as ${key} from "trellis:plugin/${wit}@0.1.7";\` to the app, and pass { ${key} } to new App`,
    );
  };
  return new Proxy({}, { get: (_, name) => (typeof name === "symbol" ? undefined : fail) });
}

/** `{ttlMs, vary, tags}` as the host's `cache-*` route options (as the Rust SDK's RouteCache). */
function cacheOptions({ ttlMs, vary = [], tags = [] }) {
  if (!(Number.isInteger(ttlMs) && ttlMs >= 0)) {
    throw new TypeError("route option `cache` needs `ttlMs`: whole milliseconds");
  }
  const options = [["cache-ttl", `${ttlMs}ms`]];
  if (vary.length) options.push(["cache-vary", vary.map((h) => h.toLowerCase()).join(",")]);
  if (tags.length) options.push(["cache-tags", tags.join(",")]);
  return options;
}

/** A handler's result as the host's response record; an error as problem+json. */
function respond(run, requestId) {
  let response;
  try {
    const value = run();
    if (value && typeof value.then === "function") {
      throw new InternalError(
        "the handler returned a Promise: handlers must be synchronous (componentize-js calls exports synchronously)",
      );
    }
    response = Response.from(value);
    if (!(Number.isInteger(response.status) && response.status >= 100 && response.status <= 599)) {
      throw new InternalError(`the handler answered status ${response.status} (100 to 599)`);
    }
  } catch (err) {
    response = asHttpError(err).toResponse(requestId);
  }
  return response.toRaw();
}

export class App {
  /**
   * A plugin named `name` at `version`. `host` holds the imported
   * interfaces it may use: `{ sql, cache, jobs, lock, config, log, trace,
   * http }` (`http` is outbound-http); each one given is also declared as a
   * capability in the manifest.
   */
  constructor(name, version, host = {}) {
    this.name = name;
    this.version = version;
    this.routes = [];
    this.migrationList = [];
    this.jobKinds = [];
    this.scheduleList = [];
    this.capabilities = [];
    for (const key of Object.keys(host)) {
      if (!INTERFACES[key]) {
        throw new TypeError(`unknown interface \`${key}\`: pass any of ${Object.keys(INTERFACES).join(", ")}`);
      }
    }
    for (const [key, spec] of Object.entries(INTERFACES)) {
      this[key] = host[key] ? spec.make(host[key]) : missing(key);
      if (host[key] && spec.capability) this.capability(spec.capability);
    }
  }

  /** Declares a capability the operator must grant (`sql`, `cache`, ...). */
  capability(name) {
    if (!this.capabilities.includes(name)) this.capabilities.push(name);
    return this;
  }

  /**
   * Serves `method` requests to `path` (`{name}` one segment, `{*name}`
   * the rest) with `handler(req, app)`. Options: `cache` ({ttlMs, tags,
   * vary}: the host caches the GET responses; a `{param}` in a tag is the
   * request's parameter), `lenientFields` (true), `batch` (a handler of
   * many requests, see README), `requestSchema` and `responseSchema` (JSON
   * Schemas, or functions making them, for the OpenAPI document).
   */
  route(method, path, handler, options = {}) {
    const upper = method.toUpperCase();
    if (!METHODS.includes(upper)) throw new TypeError(`\`${method}\` is not a method a route may have`);
    parsePattern(path);
    if (typeof handler !== "function") throw new TypeError(`the handler of ${upper} ${path} is not a function`);
    const known = ["cache", "lenientFields", "batch", "requestSchema", "responseSchema"];
    const unknown = Object.keys(options).find((key) => !known.includes(key));
    if (unknown) throw new TypeError(`unknown route option \`${unknown}\` (use ${known.join(", ")})`);
    if (options.cache && upper !== "GET") throw new TypeError(`only GET routes may be cached, not ${upper} ${path}`);
    this.routes.push({ method: upper, path, handler, options });
    return this;
  }

  get(path, handler, options) {
    return this.route("GET", path, handler, options);
  }

  post(path, handler, options) {
    return this.route("POST", path, handler, options);
  }

  put(path, handler, options) {
    return this.route("PUT", path, handler, options);
  }

  patch(path, handler, options) {
    return this.route("PATCH", path, handler, options);
  }

  delete(path, handler, options) {
    return this.route("DELETE", path, handler, options);
  }

  /**
   * Adds a schema migration `{id, name, sqlite, postgres}` (ids increasing
   * from 1; each applied once, in order, before the plugin serves) and
   * declares the `sql` capability.
   */
  migration({ id, name, sqlite, postgres }) {
    if (!Number.isInteger(id) || id < 1) throw new TypeError(`migration ids are whole numbers from 1, not ${id}`);
    this.migrationList.push({ id, name, sqlite, postgres });
    return this.capability("sql");
  }

  /**
   * Declares job kind `kind`, run by `handler(job, app)`. Options: `queue`
   * (default `default`), `maxAttempts` and `timeoutMs` (the host's
   * defaults), `priority` (0).
   */
  job(kind, handler, { queue = "", maxAttempts = 0, timeoutMs = 0, priority = 0 } = {}) {
    this.jobKinds.push({ kind: { name: kind, queue, maxAttempts, timeoutMs, priority }, handler });
    return this;
  }

  /**
   * Enqueues a `kind` job with `payload` (bytes, a string, or JSON) on a
   * cron schedule (five fields, or six with seconds first; UTC).
   */
  schedule(name, cron, kind, payload) {
    this.scheduleList.push({ name, cron, kind, payload: payloadBytes(payload) });
    return this;
  }

  /** The manifest the host reads when it loads the plugin. */
  describe() {
    return {
      name: this.name,
      version: this.version,
      routes: this.routes.map(({ method, path, options }) => ({ method, path, options: routeOptions(options) })),
      capabilities: [...this.capabilities],
    };
  }

  /** Runs the handler of the route the host matched (a `types.request`). */
  handle(raw) {
    const route = this.routes[raw.route];
    return respond(() => {
      if (!route) {
        throw new InternalError(`the host asked for route ${raw.route} but this plugin has ${this.routes.length}`);
      }
      return route.handler(new Request(raw), this);
    }, raw.requestId);
  }

  /**
   * Many requests to one route: through its `batch` handler when it has
   * one (one result per request: a value, a Response, or an Error), else
   * one by one.
   */
  handleBatch(raws) {
    const route = this.routes[raws[0]?.route];
    const sameRoute = raws.every((r) => r.route === raws[0].route);
    if (!route?.options.batch || !sameRoute) return raws.map((raw) => this.handle(raw));
    let results;
    try {
      results = route.options.batch(raws.map((raw) => new Request(raw)), this);
    } catch (err) {
      return raws.map((raw) => respond(() => { throw err; }, raw.requestId));
    }
    return raws.map((raw, i) =>
      respond(() => {
        if (i >= results.length) throw new InternalError("the batch handler returned fewer results than requests");
        if (results[i] instanceof Error) throw results[i];
        return results[i];
      }, raw.requestId),
    );
  }

  /** Runs one attempt at a job (a `job-handler.job`); its result bytes, or throws its job-error. */
  runJob(raw) {
    const entry = this.jobKinds.find(({ kind }) => kind.name === raw.kind);
    if (!entry) throw JobError.fatal(`this plugin has no job kind \`${raw.kind}\``);
    try {
      return payloadBytes(entry.handler(new Job(raw), this));
    } catch (err) {
      throw JobError.from(err);
    }
  }

  /**
   * The objects to export, named after the world's export interfaces:
   * `export const { manifest, httpHandler, migrations, jobHandler,
   * batchHandler } = app.exports();` (export those the world has).
   */
  exports() {
    return {
      manifest: { describe: () => this.describe() },
      httpHandler: { handle: (req) => this.handle(req) },
      migrations: { all: () => this.migrationList.map((m) => ({ ...m })) },
      jobHandler: {
        kinds: () => this.jobKinds.map(({ kind }) => ({ ...kind })),
        schedules: () => this.scheduleList.map((s) => ({ ...s })),
        run: (job) => this.runJob(job),
      },
      batchHandler: { handleBatch: (requests) => this.handleBatch(requests) },
    };
  }
}

/** A route's options as the manifest's `options` pairs. */
function routeOptions({ cache, lenientFields, batch, requestSchema, responseSchema }) {
  const options = cache ? cacheOptions(cache) : [];
  if (lenientFields) options.push(["fields", "lenient"]);
  if (batch) options.push(["batch", "true"]);
  for (const [key, schema] of [["request-schema", requestSchema], ["response-schema", responseSchema]]) {
    if (schema !== undefined) options.push([key, JSON.stringify(typeof schema === "function" ? schema() : schema)]);
  }
  return options;
}

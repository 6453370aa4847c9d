// The fake host a TestClient runs an app against: each trellis:plugin
// interface in the shapes componentize-js gives (records as objects,
// variants as {tag, val}, s64/u64 as bigints, a WIT error thrown as an Error
// whose `payload` is the variant, resources as objects), behaving like the
// runtime's: SQLite with the app's migrations, a cache with ttls and tags,
// leases with fencing tokens, a job queue, settings, captured logs, spans
// and outgoing requests.

import { engine } from "./sqlite.js";

/** What componentize-js throws for a WIT `result` error. */
export function hostError(tag, val) {
  const err = new Error(`${tag}${val === undefined ? "" : `: ${val}`}`);
  err.payload = val === undefined ? { tag } : { tag, val };
  return err;
}

const DISPOSE = Symbol.dispose ?? Symbol.for("dispose");

/** SQLite's error message as the host's `sql.error` variant. */
function sqlError(err) {
  const message = err instanceof Error ? err.message : String(err);
  if (/constraint failed/i.test(message)) return hostError("constraint-violation", message);
  if (/syntax error|incomplete input/i.test(message)) return hostError("syntax", message);
  if (/database is locked/i.test(message)) return hostError("unavailable", message);
  return hostError("invalid", message);
}

export class FakeHost {
  /**
   * A host for `app`: `config` (an object of settings), `fetch` (answers
   * outgoing requests: `(req) => ({status, headers, body | json})`),
   * `maxCacheValue` (bytes, 1 MiB), `maxAttempts` (a kind's default, 5).
   */
  constructor(app, { config = {}, fetch, maxCacheValue = 1 << 20, maxAttempts = 5 } = {}) {
    this.app = app;
    this.offsetMs = 0;
    this.db = engine.open();
    this.openTx = undefined;
    this.cacheEntries = new Map();
    this.invalidatedTags = [];
    this.leases = new Map();
    this.tokens = new Map();
    this.queue = [];
    this.nextJob = 1;
    this.logs = [];
    this.spans = [];
    this.requests = [];
    this.settings = Object.entries(config).map(([k, v]) => [k, String(v)]);
    this.fetchHandler = fetch;
    this.maxCacheValue = maxCacheValue;
    this.maxAttempts = maxAttempts;
    for (const m of [...app.migrationList].sort((a, b) => a.id - b.id)) {
      try {
        this.db.exec(m.sqlite);
      } catch (err) {
        throw new Error(`migration ${m.id} (${m.name}) failed on SQLite: ${err.message}`);
      }
    }
    this.interfaces = {
      sql: this.makeSql(),
      cache: this.makeCache(),
      lock: this.makeLock(),
      jobs: this.makeJobs(),
      config: {
        get: (key) => this.settings.findLast(([k]) => k === key)?.[1],
        getAll: () => this.settings.map((pair) => [...pair]),
      },
      log: { log: (level, message, fields) => this.logs.push({ level, message, fields: Object.fromEntries(fields) }) },
      trace: { Span: this.makeSpanClass() },
      "outbound-http": { fetch: (req) => this.fetch(req) },
    };
  }

  /** Milliseconds since the epoch on the fake clock (real time plus `advance`). */
  now() {
    return Date.now() + this.offsetMs;
  }

  /** Runs one statement; a SQLite error as the host's variant. */
  run(statement, params) {
    if (/^\s*(ATTACH|DETACH)\b/i.test(statement)) {
      throw hostError("permission-denied", "ATTACH and DETACH are not allowed");
    }
    try {
      return this.db.run(statement, params);
    } catch (err) {
      throw sqlError(err);
    }
  }

  makeSql() {
    const host = this;
    class Transaction {
      constructor() {
        this.open = true;
        this.jobs = [];
      }
      check() {
        if (!this.open) throw hostError("transaction-closed");
      }
      query(statement, params) {
        this.check();
        const { columns, rows } = host.run(statement, params);
        return { columns, rows };
      }
      execute(statement, params) {
        this.check();
        return BigInt(host.run(statement, params).changes);
      }
      commit() {
        this.check();
        this.open = false;
        host.openTx = undefined;
        try {
          host.db.exec("COMMIT");
        } catch (err) {
          host.db.exec("ROLLBACK");
          throw sqlError(err);
        }
        host.queue.push(...this.jobs);
      }
      /** Dropped without commit: rolled back, its jobs with it. */
      [DISPOSE]() {
        if (!this.open) return;
        this.open = false;
        host.openTx = undefined;
        host.db.exec("ROLLBACK");
      }
    }
    return {
      Transaction,
      query: (statement, params) => {
        const { columns, rows } = this.run(statement, params);
        return { columns, rows };
      },
      queryCached: (statement, params) => {
        const { columns, rows } = this.run(statement, params);
        return { columns, rows };
      },
      execute: (statement, params) => BigInt(this.run(statement, params).changes),
      begin: () => {
        if (this.openTx) {
          // The fake has one connection: a second transaction would wait
          // for the first, as a second writer does on the host's SQLite.
          throw hostError("unavailable", "database is locked: another transaction of this call is open");
        }
        this.db.exec("BEGIN");
        this.openTx = new Transaction();
        return this.openTx;
      },
    };
  }

  /** Rolls back a transaction a call left open, as the host does when the instance ends. */
  endCall() {
    this.openTx?.[DISPOSE]();
  }

  /** A live cache entry, dropping an expired one. */
  entry(key) {
    const entry = this.cacheEntries.get(key);
    if (entry && entry.expiresAt <= this.now()) {
      this.cacheEntries.delete(key);
      return undefined;
    }
    return entry;
  }

  makeCache() {
    const host = this;
    const checkKey = (key) => {
      if (key === "" || key.length > 1024) throw hostError("invalid", `a key is 1 to 1024 bytes, not ${key.length}`);
    };
    const store = (key, value, { ttlMs, tags }) => {
      checkKey(key);
      if (ttlMs < 1) throw hostError("invalid", "the ttl is at least 1 ms");
      if (value && value.length > host.maxCacheValue) throw hostError("too-large", BigInt(host.maxCacheValue));
      for (const tag of tags) if (tag === "") throw hostError("invalid", "an empty tag");
      host.cacheEntries.set(key, { value: value ? new Uint8Array(value) : null, expiresAt: host.now() + ttlMs, tags: [...tags] });
    };
    class Loader {
      constructor(key) {
        this.key = key;
      }
      fill(value, options) {
        store(this.key, value ?? null, options);
      }
      fail() {}
    }
    return {
      Loader,
      get: (key) => {
        checkKey(key);
        const value = this.entry(key)?.value;
        return value ? new Uint8Array(value) : undefined;
      },
      getMany: (keys) => keys.map((key) => this.interfaces.cache.get(key)),
      set: (key, value, options) => store(key, value, options),
      delete: (key) => {
        checkKey(key);
        this.cacheEntries.delete(key);
      },
      invalidateTag: (tag) => {
        this.invalidatedTags.push(tag);
        for (const [key, entry] of this.cacheEntries) {
          if (entry.tags.includes(tag)) this.cacheEntries.delete(key);
        }
      },
      fetch: (key) => {
        checkKey(key);
        const entry = this.entry(key);
        if (!entry) return { tag: "load", val: new Loader(key) };
        return entry.value ? { tag: "hit", val: new Uint8Array(entry.value) } : { tag: "absent" };
      },
    };
  }

  makeLock() {
    const host = this;
    class Lease {
      constructor(name, token, ttlMs) {
        this.name = name;
        this.token = token;
        this.expiresAt = host.now() + ttlMs;
      }
      held() {
        return host.leases.get(this.name) === this && this.expiresAt > host.now();
      }
      fencingToken() {
        return this.token;
      }
      validUntil() {
        return BigInt(this.expiresAt);
      }
      extend(ttlMs) {
        if (!this.held()) throw hostError("lost");
        this.expiresAt = host.now() + ttlMs;
      }
      isHeld() {
        return this.held();
      }
      release() {
        const held = this.held();
        if (host.leases.get(this.name) === this) host.leases.delete(this.name);
        if (!held) throw hostError("lost");
      }
    }
    return {
      Lease,
      acquire: (name, ttlMs, waitMs) => {
        if (name === "" || name.length > 256) throw hostError("invalid", `a lock name is 1 to 256 bytes, not ${name.length}`);
        if (ttlMs < 1) throw hostError("invalid", "the ttl is at least 1 ms");
        const holder = this.leases.get(name);
        // Nothing else runs while a test's call waits: a held lock stays held.
        if (holder && holder.expiresAt > this.now()) throw hostError("timeout");
        const token = (this.tokens.get(name) ?? 0n) + 1n;
        this.tokens.set(name, token);
        const lease = new Lease(name, token, ttlMs);
        this.leases.set(name, lease);
        return lease;
      },
    };
  }

  makeJobs() {
    const make = (kind, payload, options) => {
      const declared = this.app.jobKinds.find((k) => k.kind.name === kind);
      if (!declared) throw hostError("unknown-kind", kind);
      if (options.idempotencyKey === "") throw hostError("invalid", "an empty idempotency key");
      const twin =
        options.idempotencyKey !== undefined &&
        this.queue.find((j) => j.idempotencyKey === options.idempotencyKey && !j.finished);
      if (twin) return twin;
      return {
        seq: this.nextJob,
        id: `job-${this.nextJob++}`,
        kind,
        payload: new Uint8Array(payload),
        attempt: 0,
        maxAttempts: options.maxAttempts ?? (declared.kind.maxAttempts || this.maxAttempts),
        idempotencyKey: options.idempotencyKey,
        priority: options.priority ?? declared.kind.priority,
        queue: options.queue ?? (declared.kind.queue || "default"),
        enqueuedAt: this.now(),
        dueAt: this.now() + Number(options.delayMs ?? 0n),
        finished: undefined,
        results: [],
      };
    };
    return {
      enqueue: (kind, payload, options) => {
        const job = make(kind, payload, options);
        if (!this.queue.includes(job)) this.queue.push(job);
        return job.id;
      },
      enqueueIn: (tx, kind, payload, options) => {
        if (!tx?.open) throw hostError("invalid", "the transaction is already finished");
        const job = make(kind, payload, options);
        if (!this.queue.includes(job) && !tx.jobs.includes(job)) tx.jobs.push(job);
        return job.id;
      },
    };
  }

  makeSpanClass() {
    const host = this;
    return class Span {
      constructor(name, parent) {
        this.record = { name, parent: parent?.record.name, attributes: {}, events: [], error: undefined, ended: false };
        host.spans.push(this.record);
      }
      setAttribute(key, value) {
        this.record.attributes[key] = value;
      }
      addEvent(name, attributes) {
        this.record.events.push({ name, attributes: Object.fromEntries(attributes) });
      }
      setError(message) {
        this.record.error = message;
      }
      end() {
        this.record.ended = true;
      }
    };
  }

  /** An outgoing request, answered by the `fetch` option (denied without one). */
  fetch(req) {
    this.requests.push(req);
    if (!this.fetchHandler) {
      throw hostError("denied", `${req.url}: no entry of allowed_outbound_hosts allows it (the TestClient has no \`fetch\` option)`);
    }
    const text = () => new TextDecoder().decode(req.body);
    const answer = this.fetchHandler({ ...req, text, json: () => JSON.parse(text()) });
    const headers = Object.entries(answer.headers ?? {}).map(([k, v]) => [k.toLowerCase(), String(v)]);
    let body = answer.body ?? new Uint8Array();
    if (answer.json !== undefined) {
      body = JSON.stringify(answer.json);
      headers.push(["content-type", "application/json"]);
    }
    return { status: answer.status ?? 200, headers, body: typeof body === "string" ? new TextEncoder().encode(body) : body };
  }
}

// Each capability's helpers against the testing module's fake host (which
// has the real host's shapes: tagged variants, bigints, thrown payloads).
import { test } from "node:test";
import assert from "node:assert/strict";
import { TestClient, fakeInterfaces, hostError } from "../src/testing.js";
import { App, CacheError, JobError, LockError, SqlError, sqlValue } from "../src/index.js";

const MIGRATION = {
  id: 1,
  name: "items",
  sqlite: "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, data TEXT, at INTEGER, fence INTEGER);",
  postgres: "",
};

/** An app over every interface with one route that runs `fn(app)`. */
function run(fn, options) {
  const app = new App("t", "1", fakeInterfaces).migration(MIGRATION).get("/run", (_req, app) => fn(app));
  app.job("work", () => "done");
  return new TestClient(app, options).get("/run");
}

test("sql: $n placeholders, RETURNING, rows as objects, typed values", async () => {
  const res = await run(({ sql }) => {
    const row = sql.queryOne("INSERT INTO items (name, data, at) VALUES ($1, $2, $3) RETURNING *", [
      "a",
      { deep: [1] },
      sqlValue.timestamp(1_700_000_000_000_000),
    ]);
    const again = sql.query("SELECT id, name, $2 AS twice FROM items WHERE name = $1 AND $2 = $2", ["a", 2]);
    return { row, again, columns: again.columns, changed: sql.execute("UPDATE items SET name = $1", ["b"]) };
  });
  assert.equal(res.status, 200, res.text());
  assert.deepEqual(res.json(), {
    row: { id: 1, name: "a", data: '{"deep":[1]}', at: 1_700_000_000_000_000, fence: null },
    again: [{ id: 1, name: "a", twice: 2 }],
    columns: ["id", "name", "twice"],
    changed: 1,
  });
});

test("sql: a unique violation is a typed 409; a bad statement a 500 naming it", async () => {
  const res = await run(({ sql }) => {
    sql.execute("INSERT INTO items (name) VALUES ($1)", ["a"]);
    try {
      sql.execute("INSERT INTO items (name) VALUES ($1)", ["a"]);
    } catch (err) {
      return { kind: err.kind, unique: err.isUniqueViolation, status: err.status, code: err.code, sql: err instanceof SqlError };
    }
  });
  assert.deepEqual(res.json(), { kind: "constraint-violation", unique: true, status: 409, code: "sql_constraint_violation", sql: true });
  const thrown = await run(({ sql }) => sql.query("SELEC 1"));
  assert.deepEqual([thrown.status, thrown.json().code], [500, "sql_syntax"]);
  assert.match(thrown.json().detail, /^database: .*syntax error/);
  const missing = await run(({ sql }) => sql.query("SELECT * FROM nowhere"));
  assert.equal(missing.json().code, "sql_invalid");
});

test("sql: a transaction commits, a throw rolls it back (its jobs too)", async () => {
  const app = new App("t", "1", fakeInterfaces).migration(MIGRATION);
  app.job("work", () => "done");
  app.post("/ok", (_req, { sql, jobs }) =>
    sql.transaction((tx) => {
      tx.execute("INSERT INTO items (name) VALUES ($1)", ["kept"]);
      return { job: jobs.enqueueIn(tx, "work", { n: 1 }) };
    }),
  );
  app.post("/fail", (_req, { sql, jobs }) =>
    sql.transaction((tx) => {
      tx.execute("INSERT INTO items (name) VALUES ($1)", ["lost"]);
      jobs.enqueueIn(tx, "work", { n: 2 });
      tx.execute("INSERT INTO items (name) VALUES ($1)", ["kept"]);
    }),
  );
  app.post("/left-open", (_req, { sql }) => {
    sql.begin().execute("INSERT INTO items (name) VALUES ($1)", ["dropped"]);
    return "ok";
  });
  app.post("/closed", (_req, { sql }) => {
    const tx = sql.begin();
    tx.commit();
    tx.execute("SELECT 1");
  });
  const client = new TestClient(app);
  assert.equal((await client.post("/ok")).status, 200);
  assert.equal((await client.post("/fail")).json().code, "sql_constraint_violation");
  assert.equal((await client.post("/left-open")).status, 200);
  assert.equal((await client.post("/closed")).json().code, "sql_transaction_closed");
  assert.deepEqual(client.query("SELECT name FROM items"), [{ name: "kept" }]);
  assert.deepEqual(client.jobs.map((j) => j.json()), [{ n: 1 }]);
});

test("sql: fencedWrite refuses a stale token", async () => {
  const res = await run(({ sql }) => [
    sql.fencedWrite("items", "name", "report", { data: "v1" }, "fence", 2),
    sql.fencedWrite("items", "name", "report", { data: "stale" }, "fence", 1),
    sql.fencedWrite("items", "name", "report", { data: "v3" }, "fence", 3),
    sql.queryOne("SELECT data, fence FROM items"),
  ]);
  assert.deepEqual(res.json(), [true, false, true, { data: "v3", fence: 3 }]);
  const bad = await run(({ sql }) => sql.fencedWrite("items; DROP", "name", "x", {}, "fence", 1));
  assert.match(bad.json().detail, /invalid identifier/);
});

test("cache: ttl, tags, JSON, getOrLoad with negative entries, too-large", async () => {
  const app = new App("t", "1", fakeInterfaces);
  let loads = 0;
  app.get("/load/{key}", (req, { cache }) =>
    cache.getOrLoad(req.param("key"), { ttlMs: 1000, tags: ["t"] }, () => {
      loads += 1;
      return req.param("key") === "none" ? null : { key: req.param("key") };
    }) ?? "absent",
  );
  app.post("/set", (_req, { cache }) => {
    cache.set("raw", "bytes", { ttlMs: 100 });
    cache.setJson("j", { a: 1 }, { ttlMs: 5000, tags: ["t"] });
    return { raw: new TextDecoder().decode(cache.get("raw")), j: cache.getJson("j"), many: cache.getMany(["raw", "no"]).map(Boolean) };
  });
  app.get("/get/{key}", (req, { cache }) => ({ found: cache.get(req.param("key")) !== undefined }));
  app.post("/invalidate", (_req, { cache }) => cache.invalidateTag("t"));
  app.post("/big", (_req, { cache }) => {
    try {
      cache.set("big", new Uint8Array(2048), { ttlMs: 1 });
    } catch (err) {
      return { cache: err instanceof CacheError, kind: err.kind, limit: err.limit, code: err.code };
    }
  });
  const client = new TestClient(app, { maxCacheValue: 1024 });
  assert.deepEqual((await client.post("/set")).json(), { raw: "bytes", j: { a: 1 }, many: [true, false] });
  client.advance(100);
  assert.deepEqual((await client.get("/get/raw")).json(), { found: false });
  assert.deepEqual((await client.get("/get/j")).json(), { found: true });
  assert.deepEqual((await client.get("/load/k")).json(), { key: "k" });
  assert.deepEqual((await client.get("/load/k")).json(), { key: "k" });
  assert.equal((await client.get("/load/none")).text(), "absent");
  assert.equal((await client.get("/load/none")).text(), "absent");
  assert.equal(loads, 2, "a hit and a negative entry do not load again");
  await client.post("/invalidate");
  assert.deepEqual((await client.get("/get/j")).json(), { found: false });
  assert.deepEqual((await client.get("/load/k")).json(), { key: "k" });
  assert.equal(loads, 3);
  client.advance(1000);
  await client.get("/load/k");
  assert.equal(loads, 4, "an expired entry loads again");
  assert.deepEqual((await client.post("/big")).json(), { cache: true, kind: "too-large", limit: 1024, code: "cache_value_too_large" });
});

test("lock: fencing tokens increase; a held lock times out; withLock releases", async () => {
  const res = await run(({ lock }) => {
    const tokens = [];
    lock.withLock("report", (lease) => tokens.push(lease.fencingToken), { ttlMs: 1000 });
    const lease = lock.acquire("report", { ttlMs: 1000 });
    tokens.push(lease.fencingToken);
    let busy;
    try {
      lock.acquire("report");
    } catch (err) {
      busy = [err instanceof LockError, err.kind, err.status, err.code, err.headers];
    }
    const held = lease.isHeld();
    lease.release();
    let lost;
    try {
      lease.release();
    } catch (err) {
      lost = [err.status, err.code];
    }
    return { tokens, busy, held, lost, validUntil: lease.validUntil > Date.now() };
  });
  assert.deepEqual(res.json(), {
    tokens: [1, 2],
    busy: [true, "timeout", 503, "lock_timeout", [["retry-after", "1"]]],
    held: true,
    lost: [409, "lock_lost"],
    validUntil: true,
  });
});

test("jobs: retries, fatal, snooze, delays, unknown kinds, idempotency keys", async () => {
  const seen = [];
  const app = new App("t", "1", fakeInterfaces);
  app.job("flaky", (job) => {
    seen.push(job.attempt);
    if (job.attempt < 3) throw new Error("not yet");
    return job.json();
  }, { maxAttempts: 3 });
  app.job("doomed", () => {
    throw JobError.fatal("never");
  });
  app.job("sleepy", (job) => {
    if (job.attempt === 1 && !seen.includes("slept")) {
      seen.push("slept");
      throw JobError.snooze(500);
    }
    return "awake";
  });
  app.post("/enqueue", (_req, { jobs }) => [
    jobs.enqueue("flaky", { n: 1 }),
    jobs.enqueue("doomed", ""),
    jobs.enqueue("sleepy", "", { delayMs: 100, idempotencyKey: "s" }),
    jobs.enqueue("sleepy", "", { idempotencyKey: "s" }),
  ]);
  app.post("/unknown", (_req, { jobs }) => jobs.enqueue("nope", ""));
  const client = new TestClient(app);
  const ids = (await client.post("/enqueue")).json();
  assert.equal(ids[2], ids[3], "the same idempotency key is the same job");
  const first = client.runJobs();
  const flaky = first.filter((r) => r.kind === "flaky");
  const doomed = first.filter((r) => r.kind === "doomed");
  assert.deepEqual(flaky.map((r) => [r.attempt, r.ok]), [[1, false], [2, false], [3, true]]);
  assert.deepEqual(seen, [1, 2, 3]);
  assert.equal(new TextDecoder().decode(flaky[2].result), '{"n":1}');
  assert.deepEqual(doomed.map((r) => [r.attempt, r.error]), [[1, { tag: "fatal", val: "never" }]]);
  assert.equal(first.length, 4, "the delayed job waits for the clock");
  client.advance(100);
  assert.deepEqual(client.runJobs().map((r) => r.error?.tag ?? "ok"), ["snooze"]);
  client.advance(500);
  const woke = client.runJobs();
  assert.deepEqual([woke[0].ok, woke[0].attempt], [true, 1]);
  assert.deepEqual(client.jobs.map((j) => j.finished), ["completed", "discarded", "completed"]);
  const unknown = await client.post("/unknown");
  assert.deepEqual([unknown.status, unknown.json().code], [500, "job_invalid"]);
  assert.match(unknown.json().detail, /`nope` is not a kind/);
});

test("a job's bad payload and 4xx errors are fatal, other errors retried", () => {
  assert.deepEqual(JobError.from(new SqlError("unavailable", "down")).payload, { tag: "failed", val: "database: down" });
  assert.equal(JobError.from(new SqlError("constraint-violation", "dup")).payload.tag, "fatal");
  assert.deepEqual(JobError.retryIn(1500, "later").payload, { tag: "retry-in", val: { delayMs: 1500n, message: "later" } });
});

test("config, log and trace", async () => {
  const app = new App("t", "1", fakeInterfaces).get("/x", (_req, { config, log, trace }) => {
    log.info("hello", { n: 1 });
    return trace.inSpan("work", (span) => {
      span.set("items", 3).event("step", [["k", "v"]]);
      span.child("inner").end();
      return { name: config.get("name"), max: config.get("max", "int"), all: config.all(), none: config.get("none") };
    });
  });
  app.get("/bad", (_req, { config }) => config.get("name", "int"));
  const client = new TestClient(app, { config: { name: "x", max: 10 } });
  assert.deepEqual((await client.get("/x")).json(), { name: "x", max: 10, all: { name: "x", max: "10" } });
  assert.deepEqual(client.logs, [{ level: "info", message: "hello", fields: { n: "1" } }]);
  assert.deepEqual(client.spans.map((s) => [s.name, s.parent, s.ended]), [["work", undefined, true], ["inner", "work", true]]);
  assert.deepEqual(client.spans[0].attributes, { items: "3" });
  const bad = await client.get("/bad");
  assert.deepEqual([bad.status, bad.json().detail], [500, "plugin setting `name` has an invalid value `x`"]);
});

test("outbound http: fetch, getJson, postJson, errors as problems", async () => {
  const app = new App("t", "1", fakeInterfaces)
    .get("/rates", (_req, { http }) => http.getJson("https://api.example/rates"))
    .post("/order", (_req, { http }) => http.postJson("https://api.example/orders", { item: 7 }))
    .get("/down", (_req, { http }) => http.getJson("https://api.example/down"))
    .get("/slow", (_req, { http }) => http.fetch("https://slow.example/"));
  const client = new TestClient(app, {
    fetch(req) {
      if (req.url.includes("slow")) throw hostError("timeout");
      if (req.url.endsWith("/down")) return { status: 500, body: "boom" };
      if (req.method === "POST") return { status: 201, json: { got: req.json() } };
      return { json: { eur: 1 } };
    },
  });
  assert.deepEqual((await client.get("/rates")).json(), { eur: 1 });
  assert.deepEqual((await client.post("/order")).json(), { got: { item: 7 } });
  assert.deepEqual(client.outbound[1].headers, [["accept", "application/json"], ["content-type", "application/json"]]);
  const down = await client.get("/down");
  assert.deepEqual([down.status, down.json().code, down.json().detail], [502, "bad_gateway", "https://api.example/down: the upstream answered 500"]);
  const slow = await client.get("/slow");
  assert.deepEqual([slow.status, slow.json().code], [504, "gateway_timeout"]);
  const denied = await new TestClient(app).get("/rates");
  assert.deepEqual([denied.status, denied.json().code], [502, "bad_gateway"]);
});

test("an interface the app was not given is a 500 saying how to give it", async () => {
  const app = new App("t", "1").get("/x", (_req, { sql }) => sql.query("SELECT 1"));
  const res = await new TestClient(app).get("/x");
  assert.equal(res.status, 500);
  assert.match(res.json().detail, /import \* as sql from "trellis:plugin\/sql@0.1.7"/);
});

test("the manifest: capabilities from the interfaces, route options as the Rust SDK encodes them", () => {
  const app = new App("t", "1", { sql: fakeInterfaces.sql, trace: fakeInterfaces.trace, http: fakeInterfaces.http });
  app.get("/n/{id}", () => 1, { cache: { ttlMs: 30_000, vary: ["Accept-Language"], tags: ["notes", "note:{id}"] }, lenientFields: true });
  app.post("/n", () => 1, { batch: (reqs) => reqs.map(() => 1), requestSchema: () => ({ type: "object" }) });
  app.capability("lock");
  const manifest = app.describe();
  assert.deepEqual(manifest.capabilities, ["sql", "outbound-http", "lock"]);
  assert.deepEqual(manifest.routes[0].options, [
    ["cache-ttl", "30000ms"],
    ["cache-vary", "accept-language"],
    ["cache-tags", "notes,note:{id}"],
    ["fields", "lenient"],
  ]);
  assert.deepEqual(manifest.routes[1].options, [["batch", "true"], ["request-schema", '{"type":"object"}']]);
});

test("a batch handler answers each request of a batch", () => {
  const app = new App("t", "1").post("/n", () => "single", {
    batch: (reqs) => reqs.map((req, i) => (i === 1 ? new Error("second failed") : { body: req.text() })),
  });
  const raw = (body) => ({ route: 0, method: "POST", path: "/n", params: [], query: [], headers: [], body: new TextEncoder().encode(body), requestId: `r-${body}` });
  const answers = app.exports().batchHandler.handleBatch([raw("a"), raw("b"), raw("c")]);
  assert.deepEqual(answers.map((a) => a.status), [200, 500, 200]);
  assert.equal(JSON.parse(new TextDecoder().decode(answers[1].body)).request_id, "r-b");
});

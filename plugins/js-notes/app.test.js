// Unit tests of js-notes under Node (run by ../sdk-js/test.sh): the same
// checks as the black-box suite the notes twins share
// (tests/integration/guests.rs), against the SDK's fake host.
import { test } from "node:test";
import assert from "node:assert/strict";
import { TestClient } from "../sdk-js/src/testing.js";

const { app } = await import("./app.js");

test("creates, reads, updates and deletes a note", async () => {
  const client = new TestClient(app);
  const created = await client.post("/js-notes", { json: { title: "first", body: "one two three" } });
  assert.equal(created.status, 201, created.text());
  const note = created.json();
  assert.equal(created.header("location"), `/js-notes/${note.id}`);
  assert.deepEqual(Object.keys(note), ["id", "title", "body", "created_at", "updated_at"]);
  assert.ok(note.created_at > 1_600_000_000_000_000, "microseconds");
  assert.equal(note.updated_at, note.created_at);
  assert.deepEqual((await client.get(`/js-notes/${note.id}`)).json(), note);

  const updated = await client.put(`/js-notes/${note.id}`, { json: { title: "first", body: "four words in here" } });
  assert.equal(updated.json().body, "four words in here");
  assert.deepEqual(client.invalidatedTags.slice(-2), [`note:${note.id}`, "notes"]);
  assert.equal((await client.delete(`/js-notes/${note.id}`)).status, 204);
  assert.equal((await client.get(`/js-notes/${note.id}`)).status, 404);
  assert.equal((await client.delete(`/js-notes/${note.id}`)).status, 404);
  assert.equal((await client.put("/js-notes/999", { json: { title: "y" } })).status, 404);
});

test("answers bad input with the problem the Rust twin gives", async () => {
  const client = new TestClient(app);
  await client.post("/js-notes", { json: { title: "first" } });
  const problem = async (res, status, code) => {
    assert.equal(res.status, status, res.text());
    assert.equal(res.header("content-type"), "application/problem+json");
    assert.equal(res.json().code, code);
    return res.json().detail;
  };
  assert.match(await problem(await client.post("/js-notes", { json: { title: "first" } }), 409, "conflict"), /first/);
  assert.match(await problem(await client.post("/js-notes", { json: { title: 7 } }), 400, "bad_request"), /`title`/);
  assert.match(await problem(await client.post("/js-notes", { json: { title: "x", colour: "red" } }), 400, "bad_request"), /`colour`/);
  await problem(await client.post("/js-notes", { body: "{not json" }), 400, "bad_request");
  await problem(await client.post("/js-notes", { json: { title: "   " } }), 422, "unprocessable_content");
  await problem(await client.post("/js-notes", { json: { title: "é".repeat(101) } }), 422, "unprocessable_content");
  await problem(await client.get("/js-notes/999999"), 404, "not_found");
  assert.match(await problem(await client.get("/js-notes/x"), 400, "bad_request"), /`id`/);
});

test("lists notes in pages with an opaque cursor", async () => {
  const client = new TestClient(app);
  for (const title of ["first", "second", "third"]) await client.post("/js-notes", { json: { title } });
  const titles = [];
  let path = "/js-notes?limit=2";
  for (;;) {
    const page = (await client.get(path)).json();
    titles.push(...page.items.map((n) => n.title));
    if (page.next_cursor === null) break;
    path = `/js-notes?limit=2&cursor=${page.next_cursor}`;
  }
  assert.deepEqual(titles, ["first", "second", "third"]);
  assert.equal((await client.get("/js-notes")).json().items.length, 3);
  for (const bad of ["?limit=0", "?limit=101", "?limit=ten", "?cursor=42"]) {
    assert.equal((await client.get(`/js-notes${bad}`)).status, 400, bad);
  }
});

test("indexes a note in a job enqueued with its insert, and again after an update", async () => {
  const client = new TestClient(app);
  const { id } = (await client.post("/js-notes", { json: { title: "a", body: "one two three" } })).json();
  assert.equal((await client.get(`/js-notes/${id}/index`)).status, 404);
  assert.deepEqual(client.jobs.map((j) => [j.kind, j.json()]), [["index-note", { id }]]);
  const [run] = client.runJobs();
  assert.ok(run.ok, JSON.stringify(run.error));
  assert.equal((await client.get(`/js-notes/${id}/index`)).json().words, 3);

  await client.put(`/js-notes/${id}`, { json: { title: "a", body: "one two three four five" } });
  await client.put(`/js-notes/${id}`, { json: { title: "a", body: "one two three four five" } });
  assert.equal(client.runJobs().length, 1, "updates share one waiting job (idempotency key)");
  assert.equal((await client.get(`/js-notes/${id}/index`)).json().words, 5);

  // A refused insert leaves no job: it was enqueued in the rolled-back transaction.
  await client.post("/js-notes", { json: { title: "a" } });
  assert.equal(client.jobs.length, 2);
});

test("bulk answers each note on its own; the digest counts the notes", async () => {
  const client = new TestClient(app);
  await client.post("/js-notes", { json: { title: "first" } });
  const bulk = await client.post("/js-notes/bulk", { json: [{ title: "fourth" }, { title: "first" }, { title: "" }, 7] });
  assert.equal(bulk.status, 200, bulk.text());
  assert.deepEqual(bulk.json().results.map((r) => r.status), [201, 409, 422, 400]);
  assert.equal((await client.post("/js-notes/bulk", { json: [] })).status, 400);
  client.tick("hourly-digest");
  const digests = client.runJobs().filter((r) => r.kind === "digest");
  assert.equal(new TextDecoder().decode(digests[0].result), '{"notes":2}');
  assert.equal(client.query("SELECT notes FROM digests")[0].notes, 2);
});

test("declares the Rust twin's routes, cache options, jobs and schedule", () => {
  const manifest = app.describe();
  assert.deepEqual(manifest.capabilities, ["sql", "cache", "jobs"]);
  const byRoute = Object.fromEntries(manifest.routes.map((r) => [`${r.method} ${r.path}`, Object.fromEntries(r.options)]));
  assert.deepEqual(Object.keys(byRoute), [
    "POST /js-notes",
    "POST /js-notes/bulk",
    "GET /js-notes",
    "GET /js-notes/{id}",
    "GET /js-notes/{id}/index",
    "PUT /js-notes/{id}",
    "DELETE /js-notes/{id}",
  ]);
  assert.equal(byRoute["GET /js-notes/{id}"]["cache-ttl"], "30000ms");
  assert.equal(byRoute["GET /js-notes/{id}"]["cache-tags"], "notes,note:{id}");
  assert.equal(byRoute["GET /js-notes"]["cache-tags"], "notes");
  const jobs = app.exports().jobHandler;
  assert.deepEqual(jobs.kinds().map((k) => [k.name, k.maxAttempts]), [["index-note", 5], ["digest", 3]]);
  assert.deepEqual(jobs.schedules().map((s) => [s.name, s.cron, s.kind]), [["hourly-digest", "0 * * * *", "digest"]]);
});

// Routing like the host: precedence, decoding, 404/405, HEAD.
import { test } from "node:test";
import assert from "node:assert/strict";
import { TestClient } from "../src/testing.js";
import { App } from "../src/index.js";

const echo = (req) => ({ params: Object.fromEntries(req.params), path: req.path });

test("a static segment wins over a parameter declared before it", async () => {
  const app = new App("t", "1").get("/users/{id}", (req) => ({ id: req.param("id") })).get("/users/me", () => "me");
  const client = new TestClient(app);
  assert.equal((await client.get("/users/me")).text(), "me");
  assert.deepEqual((await client.get("/users/7")).json(), { id: "7" });
  assert.deepEqual((await client.get("/users/mex")).json(), { id: "mex" });
});

test("a parameter wins over a catch-all, and the router backtracks", async () => {
  const app = new App("t", "1")
    .get("/files/{*rest}", (req) => `rest ${req.param("rest")}`)
    .get("/files/{name}", (req) => `name ${req.param("name")}`)
    .get("/a/{x}/c", () => "param then c")
    .get("/a/b/d", () => "static");
  const client = new TestClient(app);
  assert.equal((await client.get("/files/a.txt")).text(), "name a.txt");
  assert.equal((await client.get("/files/a/b.txt")).text(), "rest a/b.txt");
  assert.equal((await client.get("/a/b/c")).text(), "param then c");
  assert.equal((await client.get("/a/b/d")).text(), "static");
  assert.equal((await client.get("/files/")).status, 404);
  assert.equal((await client.get("/a/b")).status, 404);
});

test("parameters are percent-decoded as UTF-8; %2F stays in its segment", async () => {
  const client = new TestClient(new App("t", "1").get("/hello/{name}", echo).get("/raw/{*rest}", echo));
  assert.deepEqual((await client.get("/hello/John%20Smith")).json().params, { name: "John Smith" });
  assert.deepEqual((await client.get("/hello/a%2Fb")).json(), { params: { name: "a/b" }, path: "/hello/a%2Fb" });
  assert.deepEqual((await client.get("/hello/%C3%A9t%C3%A9")).json().params, { name: "été" });
  assert.deepEqual((await client.get("/hello/100%")).json().params, { name: "100%" });
  assert.deepEqual((await client.get("/raw/x/y%2Fz")).json().params, { rest: "x/y/z" });
  const bad = await client.get("/hello/%FF");
  assert.equal(bad.status, 400);
  assert.match(bad.json().detail, /`name`/);
});

test("no path is a 404, a path without the method a 405 with allow; HEAD uses GET", async () => {
  const app = new App("t", "1").get("/notes", () => "list").post("/notes", () => "made");
  const client = new TestClient(app);
  const missing = await client.get("/nope");
  assert.equal(missing.status, 404);
  assert.equal(missing.json().code, "not_found");
  const wrong = await client.delete("/notes");
  assert.equal(wrong.status, 405);
  assert.equal(wrong.json().code, "method_not_allowed");
  assert.equal(wrong.header("allow"), "GET, HEAD, POST");
  const head = await client.head("/notes");
  assert.equal(head.status, 200);
  assert.equal(head.body.length, 0);
  assert.equal((await client.post("/notes")).text(), "made");
});

test("query strings are decoded like the host's", async () => {
  const app = new App("t", "1").get("/q", (req) => ({ pairs: req.queryPairs, all: req.queryAll("a") }));
  const body = (await new TestClient(app).get("/q?a=1&b=x+y&a=%C3%A9&c")).json();
  assert.deepEqual(body.pairs, [["a", "1"], ["b", "x y"], ["a", "é"], ["c", ""]]);
  assert.deepEqual(body.all, ["1", "é"]);
});

test("malformed patterns are refused when declared", () => {
  const app = new App("t", "1");
  assert.throws(() => app.get("notes", echo), /must start with/);
  assert.throws(() => app.get("/x/{*rest}/y", echo), /last segment/);
  assert.throws(() => app.get("/x/a{id}", echo), /whole segment/);
  assert.throws(() => app.get("/x/{id}/{id}", echo), /twice/);
  assert.throws(() => app.post("/x", echo, { cache: { ttlMs: 1 } }), /only GET/);
  assert.throws(() => app.get("/x", echo, { cahce: {} }), /unknown route option `cahce`/);
});

// Unit tests of js-hello under Node (run by ../sdk-js/test.sh).
import { test } from "node:test";
import assert from "node:assert/strict";
import { TestClient } from "../sdk-js/src/testing.js";

const { app } = await import("./app.js");

test("greets the world and a name, with the configured greeting", async () => {
  const client = new TestClient(app, { config: { greeting: "Hi" } });
  const world = await client.get("/hello");
  assert.equal(world.status, 200);
  assert.equal(world.text(), "Hi, world!");
  assert.match(world.header("content-type"), /^text\/plain/);
  const ada = await client.get("/hello/Ada%20L");
  assert.deepEqual(ada.json(), { greeting: "Hi, Ada L!" });
});

test("says Hello without a setting, and answers 404 and 405 like the host", async () => {
  const client = new TestClient(app);
  assert.equal((await client.get("/hello")).text(), "Hello, world!");
  assert.equal((await client.get("/hello/a/b")).json().code, "not_found");
  const wrong = await client.delete("/hello");
  assert.equal(wrong.status, 405);
  assert.equal(wrong.header("allow"), "GET, HEAD");
});

test("declares its routes and the config capability", () => {
  const manifest = app.describe();
  assert.deepEqual(manifest.routes.map((r) => r.path), ["/hello", "/hello/{name}"]);
  assert.deepEqual(manifest.capabilities, ["config"]);
});

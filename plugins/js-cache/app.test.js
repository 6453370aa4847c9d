// Unit tests of js-cache under Node (run by ../sdk-js/test.sh).
import { test } from "node:test";
import assert from "node:assert/strict";
import { TestClient } from "../sdk-js/src/testing.js";

const { app } = await import("./app.js");

test("stores, reads and deletes values; a ttl runs out", async () => {
  const client = new TestClient(app);
  assert.equal((await client.put("/js-cache/values/greeting?ttl_ms=1000", { body: "hello" })).status, 204);
  const got = await client.get("/js-cache/values/greeting");
  assert.equal(got.status, 200);
  assert.equal(got.text(), "hello");
  client.advance(1000);
  assert.equal((await client.get("/js-cache/values/greeting")).status, 404);
  await client.put("/js-cache/values/k", { body: "v" });
  assert.equal((await client.delete("/js-cache/values/k")).status, 204);
  const gone = await client.get("/js-cache/values/k");
  assert.equal(gone.json().code, "not_found");
});

test("caches the sum of squares: a miss, then a hit", async () => {
  const client = new TestClient(app);
  const first = await client.get("/js-cache/squares/1000");
  assert.equal(first.header("x-cache"), "miss");
  assert.equal(first.json().sum, "333833500");
  const second = await client.get("/js-cache/squares/1000");
  assert.equal(second.header("x-cache"), "hit");
  assert.deepEqual(second.json(), first.json());
  assert.deepEqual(client.cacheEntries.get("squares:1000").tags, ["squares"]);
});

test("a value over the cache's limit is a 413 naming the limit; bad input a 400", async () => {
  const client = new TestClient(app, { maxCacheValue: 1024 });
  const big = await client.put("/js-cache/values/big", { body: "x".repeat(4096) });
  assert.equal(big.status, 413);
  assert.equal(big.json().code, "content_too_large");
  assert.match(big.json().detail, /1024/);
  for (const path of ["/js-cache/values/k?ttl_ms=0", "/js-cache/values/k?ttl_ms=soon"]) {
    assert.equal((await client.put(path, { body: "v" })).json().code, "bad_request");
  }
  assert.equal((await client.get("/js-cache/squares/-1")).status, 400);
  assert.equal((await client.get("/js-cache/squares/x")).status, 400);
});

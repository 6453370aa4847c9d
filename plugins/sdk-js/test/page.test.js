// Cursors in the Rust SDK's format, and the page helpers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { TestClient } from "../src/testing.js";
import { App, decodeCursor, encodeCursor, pageOf, pageResponse } from "../src/index.js";

test("cursors are the Rust SDK's bytes: JSON, FNV-1a, base64url", () => {
  // Computed independently (Python: json, struct.pack('>I'), urlsafe_b64encode).
  assert.equal(encodeCursor(42), "NDLfdU59");
  assert.equal(encodeCursor([1700000000, 7]), "WzE3MDAwMDAwMDAsN122pMWo");
  assert.equal(decodeCursor("NDLfdU59"), 42);
  assert.deepEqual(decodeCursor(encodeCursor({ id: 3, t: "été" })), { id: 3, t: "été" });
});

test("an edited or made-up cursor is a 400", () => {
  for (const bad of ["NDLfdU5", "NDLfdU58", "NDLfdU59=", "42", "", "!!!!", "NDLfdU5+"]) {
    assert.throws(() => decodeCursor(bad), { status: 400, detail: "the cursor is not one this endpoint returned" }, bad);
  }
  assert.throws(() => decodeCursor(encodeCursor("x"), "int"), { status: 400 });
});

test("limit and cursor from the request; next_cursor only on a full page", async () => {
  const ids = [1, 2, 3, 4, 5];
  const app = new App("t", "1").get("/items", (req) => {
    const page = pageOf(req, { defaultLimit: 2, max: 3, cursor: "int" });
    return pageResponse(ids.filter((id) => id > (page.after ?? 0)).slice(0, page.limit).map((id) => ({ id })), page.limit, (i) => i.id);
  });
  const client = new TestClient(app);
  const first = (await client.get("/items")).json();
  assert.deepEqual(first.items, [{ id: 1 }, { id: 2 }]);
  assert.equal(first.next_cursor, encodeCursor(2));
  const rest = (await client.get(`/items?limit=3&cursor=${first.next_cursor}`)).json();
  assert.deepEqual(rest, { items: [{ id: 3 }, { id: 4 }, { id: 5 }], next_cursor: encodeCursor(5) });
  assert.deepEqual((await client.get(`/items?cursor=${encodeCursor(5)}`)).json(), { items: [], next_cursor: null });
  for (const bad of ["?limit=0", "?limit=4", "?limit=-1", "?limit=two"]) {
    assert.equal((await client.get(`/items${bad}`)).json().detail, "limit must be a whole number from 1 to 3");
  }
});

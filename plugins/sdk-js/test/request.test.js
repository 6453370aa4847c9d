// Request helpers, validation, responses and the problem+json shape.
import { test } from "node:test";
import assert from "node:assert/strict";
import { TestClient } from "../src/testing.js";
import { App, BadRequest, Conflict, HttpError, Response, optional, validate } from "../src/index.js";

test("typed parameters: a bad value is a 400 naming it", async () => {
  const app = new App("t", "1").get("/n/{id}", (req) => ({
    id: req.param("id", "int"),
    limit: req.query("limit", "int"),
    flag: req.query("flag", "bool"),
    ratio: req.query("ratio", "number"),
    hex: req.query("hex", (t) => (/^[0-9a-f]+$/.test(t) ? parseInt(t, 16) : undefined)),
  }));
  const client = new TestClient(app);
  assert.deepEqual((await client.get("/n/-7?limit=3&flag=true&ratio=0.5&hex=ff")).json(), {
    id: -7,
    limit: 3,
    flag: true,
    ratio: 0.5,
    hex: 255,
  });
  const cases = [
    ["/n/x", "invalid path parameter `id`: `x`"],
    ["/n/1.5", "invalid path parameter `id`: `1.5`"],
    ["/n/99999999999999999999", "invalid path parameter `id`: `99999999999999999999`"],
    ["/n/1?limit=ten", "invalid query parameter `limit`: `ten`"],
    ["/n/1?flag=yes", "invalid query parameter `flag`: `yes`"],
    ["/n/1?hex=zz", "invalid query parameter `hex`: `zz`"],
  ];
  for (const [path, detail] of cases) {
    const res = await client.get(path);
    assert.equal(res.status, 400, path);
    assert.equal(res.json().detail, detail);
  }
});

test("json(schema): required, typed and unknown fields are 400s naming the field", () => {
  const schema = { title: "string", body: optional("string", ""), tags: optional(["string"]), meta: optional({ n: "int?" }) };
  assert.deepEqual(validate({ title: "a" }, schema), { title: "a", body: "" });
  assert.deepEqual(validate({ title: "a", tags: ["x"], meta: { n: null } }, schema), {
    title: "a",
    body: "",
    tags: ["x"],
    meta: { n: null },
  });
  const detail = (value) => {
    try {
      validate(value, schema);
    } catch (err) {
      assert.ok(err instanceof BadRequest);
      return err.detail;
    }
    assert.fail("validated");
  };
  assert.equal(detail({}), "invalid JSON at `title`: missing field");
  assert.equal(detail({ title: 7 }), "invalid JSON at `title`: expected a string, got an integer");
  assert.equal(detail({ title: "a", colour: "red" }), "invalid JSON at `colour`: unknown field, expected one of `title`, `body`, `tags`, `meta`");
  assert.equal(detail({ title: "a", tags: ["x", 2] }), "invalid JSON at `tags[1]`: expected a string, got an integer");
  assert.equal(detail({ title: "a", meta: { n: 1.5 } }), "invalid JSON at `meta.n`: expected an integer, got a number");
  assert.equal(detail([1]), "invalid JSON: expected an object, got an array");
});

test("a body that is not JSON or not UTF-8 is a 400", async () => {
  const app = new App("t", "1").post("/j", (req) => req.json({ a: "int" }));
  const client = new TestClient(app);
  assert.deepEqual((await client.post("/j", { json: { a: 1 } })).json(), { a: 1 });
  assert.match((await client.post("/j", { body: "{nope" })).json().detail, /^invalid JSON: /);
  assert.equal((await client.post("/j", { body: new Uint8Array([0xff]) })).json().detail, "the body is not UTF-8");
});

test("errors become problem+json exactly like the Rust SDK's", async () => {
  const app = new App("t", "1")
    .get("/conflict", () => {
      throw new Conflict("taken");
    })
    .get("/teapot", () => {
      throw new HttpError(418, "short and stout").withCode("teapot").withHeader("retry-after", "5");
    })
    .get("/bug", () => null.x)
    .get("/string", () => {
      throw "oops";
    })
    .get("/async", async () => "later")
    .get("/status", () => new Response(42));
  const client = new TestClient(app);
  const res = await client.get("/conflict", { requestId: "req-1" });
  assert.equal(res.status, 409);
  assert.equal(res.header("content-type"), "application/problem+json");
  assert.equal(res.text(), '{"type":"about:blank","title":"Conflict","status":409,"detail":"taken","code":"conflict","request_id":"req-1"}');
  const teapot = await client.get("/teapot");
  assert.deepEqual([teapot.status, teapot.json().title, teapot.json().code, teapot.header("retry-after")], [418, "Client Error", "teapot", "5"]);
  for (const path of ["/bug", "/string", "/async", "/status"]) {
    const fault = await client.get(path);
    assert.equal(fault.status, 500, path);
    assert.equal(fault.json().code, "internal_server_error");
  }
  assert.match((await client.get("/bug")).json().detail, /TypeError/);
  assert.equal(new HttpError(200, "x").status, 500);
});

test("handlers may return Responses or plain values", async () => {
  const app = new App("t", "1")
    .get("/json", () => ({ a: 1 }))
    .get("/text", () => "hi")
    .get("/none", () => undefined)
    .post("/made", () => Response.created("/made/1", { id: 1 }))
    .get("/custom", () => Response.text("x", 202).withHeader("x-a", "b").withHeader("content-type", "text/csv"));
  const client = new TestClient(app);
  assert.equal((await client.get("/json")).header("content-type"), "application/json");
  assert.equal((await client.get("/text")).header("content-type"), "text/plain; charset=utf-8");
  assert.equal((await client.get("/none")).status, 204);
  const made = await client.post("/made");
  assert.deepEqual([made.status, made.header("location"), made.json()], [201, "/made/1", { id: 1 }]);
  const custom = await client.get("/custom");
  assert.deepEqual([custom.status, custom.header("x-a"), custom.header("content-type")], [202, "b", "text/csv"]);
});

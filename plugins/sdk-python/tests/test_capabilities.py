"""The capability helpers against the testing fakes: sql, cache, lock,
jobs, config, log, trace, outbound http, pagination."""

from dataclasses import dataclass

import pytest

from trellis_sdk import (App, Conflict, HttpError, cache, config, http, jobs, lock, log, page,
                         sql, testing, trace)
from trellis_sdk.page import decode_cursor, encode


@dataclass
class Item:
    id: int
    name: str
    active: bool


def make():
    app = App("t", "1", capabilities=["cache", "jobs", "lock", "config", "log"])
    app.migration(1, "items", sqlite="""
        CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
                            active INTEGER NOT NULL DEFAULT 1, data TEXT);
        CREATE TABLE reports (name TEXT PRIMARY KEY, total INTEGER, fence INTEGER);""")

    @app.get("/items")
    def list_items(req):
        asked = page.from_request(req, default=2, maximum=10, cursor=int)
        rows = sql.query_replica_ok("SELECT id, name, active FROM items WHERE id > $1 "
                                    "ORDER BY id LIMIT $2", asked.after or 0, asked.limit)
        return page.respond(rows.all(Item), asked.limit, lambda item: item.id)

    @app.post("/items")
    def add(req):
        with sql.begin() as tx:
            row = tx.query("INSERT INTO items (name) VALUES ($1) RETURNING id", req.json()["name"])
            jobs.enqueue("count", {"id": row.scalar()}, tx=tx)
        return {"id": row.scalar()}

    @app.job("count", max_attempts=2)
    def count(job):
        return {"n": sql.query("SELECT count(*) FROM items").scalar(), "id": job.json()["id"]}

    @app.job("flaky", max_attempts=3)
    def flaky(job):
        if job.attempt < 3:
            raise RuntimeError(f"attempt {job.attempt}")
        return "ok"

    @app.job("later")
    def later(job):
        if job.attempt == 1:
            raise jobs.Retry(60, "not yet")
        return None

    @app.job("bad")
    def bad(job):
        job.json(Item)

    return app


@pytest.fixture
def client():
    with testing.Client(make(), config={"greeting": "Hi", "max": 5}) as c:
        yield c


def test_sql_rows_decode_and_json_and_timestamps(client):
    sql.execute("INSERT INTO items (id, name, active, data) VALUES ($1, $2, $3, $4)",
                1, "a", True, {"k": [1, 2]})
    rows = sql.query("SELECT id, name, active, data FROM items")
    assert rows.columns == ["id", "name", "active", "data"]
    assert rows.first() == {"id": 1, "name": "a", "active": 1, "data": '{"k":[1,2]}'}
    assert rows.all(Item) == [Item(1, "a", True)]
    assert sql.query("SELECT id FROM items WHERE id = $1", 99).first() is None
    assert len(sql.query("SELECT id FROM items WHERE id = $1", 99)) == 0
    with pytest.raises(HttpError) as err:
        sql.query("SELECT id FROM items WHERE id = 99").first_or_404("no item 99")
    assert err.value.status == 404
    with pytest.raises(HttpError, match="cannot decode a row"):
        sql.query("SELECT id FROM items").all(Item)


def test_sql_placeholders_reuse_and_skip_strings(client):
    assert testing.translate_placeholders("SELECT '$1', $1, $2 -- $3\n, $1") == \
        "SELECT '$1', ?1, ?2 -- $3\n, ?1"
    assert sql.query("SELECT $1 + $1 AS two, '$1' AS lit", 1).first() == {"two": 2, "lit": "$1"}


def test_a_unique_violation_is_a_conflict(client):
    sql.execute("INSERT INTO items (name) VALUES ($1)", "a")
    with pytest.raises(sql.UniqueViolation) as err:
        sql.execute("INSERT INTO items (name) VALUES ($1)", "a")
    assert isinstance(err.value, Conflict) and isinstance(err.value, sql.ConstraintViolation)
    assert err.value.status == 409 and err.value.code == "sql_constraint_violation"
    assert err.value.message == "UNIQUE constraint failed: items.name"
    with pytest.raises(sql.ConstraintViolation) as err:
        sql.execute("INSERT INTO items (name) VALUES (NULL)")
    assert not isinstance(err.value, sql.UniqueViolation)
    with pytest.raises(sql.Syntax):
        sql.execute("INSERT INTO")
    with pytest.raises(sql.Invalid):
        sql.query("SELECT * FROM nowhere")
    with pytest.raises(sql.PermissionDenied):
        sql.execute("ATTACH DATABASE ':memory:' AS other")


def test_transactions_commit_roll_back_and_close(client):
    with sql.begin() as tx:
        tx.execute("INSERT INTO items (name) VALUES ($1)", "kept")
        assert sql.query("SELECT count(*) FROM items").scalar() == 0  # not committed yet
    with pytest.raises(RuntimeError):
        with sql.begin() as tx:
            tx.execute("INSERT INTO items (name) VALUES ($1)", "dropped")
            raise RuntimeError("boom")
    tx = sql.begin()
    tx.execute("INSERT INTO items (name) VALUES ($1)", "explicit")
    tx.rollback()
    assert [r["name"] for r in sql.query("SELECT name FROM items")] == ["kept"]
    tx = sql.begin()
    tx.commit()
    with pytest.raises(sql.TransactionClosed):
        tx.execute("SELECT 1")
    writer = sql.begin()
    writer.execute("INSERT INTO items (name) VALUES ('w')")
    with pytest.raises(sql.Unavailable) as err:  # the write lock is held, as on the host
        sql.execute("INSERT INTO items (name) VALUES ('other')")
    assert err.value.status == 503 and ("retry-after", "1") in err.value.headers
    writer.rollback()


def test_fenced_write_refuses_a_stale_token(client):
    assert sql.fenced_write("reports", "name", "daily", {"total": 1}, "fence", 5)
    assert not sql.fenced_write("reports", "name", "daily", {"total": 2}, "fence", 4)
    assert sql.query("SELECT total FROM reports").scalar() == 1
    with pytest.raises(HttpError, match="invalid identifier"):
        sql.fenced_write("reports; --", "name", "x", {}, "fence", 1)


def test_an_unfinished_transaction_rolls_back_when_the_request_ends():
    app = App("t", "1")
    app.migration(1, "t", sqlite="CREATE TABLE t (x INTEGER)")

    @app.post("/leak")
    def leak(req):
        sql.begin().execute("INSERT INTO t VALUES (1)")

    client = testing.Client(app)
    assert client.post("/leak").status == 204
    assert client.db.execute("SELECT count(*) FROM t").fetchone() == (0,)
    assert client.post("/leak").status == 204  # no lock left behind


def test_pagination_cursors_match_the_rust_format(client):
    # The Rust SDK's page::encode(&7i64): JSON `7`, FNV-1a with the salt, base64url.
    assert encode(7) == encode(7) and decode_cursor(encode(7)) == 7
    assert decode_cursor(encode({"id": 3, "at": "x"})) == {"id": 3, "at": "x"}
    assert decode_cursor(encode([1, "é"])) == [1, "é"]
    for bad in ["42", "", encode(7) + "A", encode(7)[:-1] + "x", "MiQLsC=", "Mi*"]:
        with pytest.raises(HttpError, match="the cursor is not one this endpoint returned"):
            decode_cursor(bad)
    with pytest.raises(HttpError):
        decode_cursor(encode("seven"), int)
    for name in "abcde":
        sql.execute("INSERT INTO items (name) VALUES ($1)", name)
    names, target = [], "/items"
    while True:
        body = client.get(target).json()
        names += [item["name"] for item in body["items"]]
        if body["next_cursor"] is None:
            break
        target = f"/items?cursor={body['next_cursor']}"
    assert names == list("abcde")
    for bad in ["?limit=0", "?limit=11", "?limit=ten", "?cursor=42"]:
        assert client.get("/items" + bad).status == 400


def test_cursors_are_byte_for_byte_the_rust_sdks():
    # The `next_cursor`s the Rust `notes` plugin (trellis_sdk::page::encode
    # of an i64) answered for ids 1 and 2, served by the runtime.
    assert encode(1) == "MSULsb4" and encode(2) == "MiQLsCs"
    assert decode_cursor("MiQLsCs", int) == 2


def test_cache_ttls_tags_and_loaders(client):
    cache.set("k", b"v", ttl=10, tags=["t"])
    assert cache.get("k") == b"v" and cache.get_many(["k", "nope"]) == [b"v", None]
    client.clock.advance(11)
    assert cache.get("k") is None
    cache.set_json("j", {"a": 1}, ttl=10, tags=["t"])
    assert cache.get_json("j") == {"a": 1}
    cache.invalidate_tag("t")
    assert cache.get("j") is None and client.cache.invalidated == ["t"]
    calls = []

    def load():
        calls.append(1)
        return {"n": len(calls)}

    assert cache.get_or_load("g", load, ttl=5) == {"n": 1}
    assert cache.get_or_load("g", load, ttl=5) == {"n": 1}
    client.clock.advance(6)
    assert cache.get_or_load("g", load, ttl=5) == {"n": 2}
    assert cache.get_or_load("none", lambda: None, ttl=5) is None
    assert cache.get_or_load("none", lambda: pytest.fail("loaded twice"), ttl=5) is None
    with pytest.raises(ZeroDivisionError):
        cache.get_or_load("err", lambda: 1 / 0, ttl=5)
    with pytest.raises(cache.InvalidCall) as err:
        cache.set("", b"x", ttl=1)
    assert err.value.code == "cache_invalid" and err.value.status == 500
    with pytest.raises(cache.ValueTooLarge):
        cache.set("big", b"x" * (1024 * 1024 + 1), ttl=1)
    cache.delete("g")
    assert isinstance(cache.fetch("g"), cache.Load)


def test_the_response_cache_serves_until_a_tag_is_invalidated():
    app = App("t", "1", capabilities=["cache"])
    hits = []

    @app.get("/n/{id}", cache=__import__("trellis_sdk").RouteCache(30, tags=["note:{id}"]))
    def get(req, id: int):
        hits.append(id)
        return {"id": id, "seen": len(hits)}

    @app.post("/n/{id}")
    def touch(req, id: int):
        cache.invalidate_tag(f"note:{id}")

    client = testing.Client(app)
    assert client.get("/n/1").header("x-trellis-cache") == "miss"
    assert client.get("/n/1").header("x-trellis-cache") == "hit"
    assert client.get("/n/2").json()["seen"] == 2
    client.post("/n/1")
    assert client.get("/n/1").json()["seen"] == 3
    client.clock.advance(31)
    assert client.get("/n/2").header("x-trellis-cache") == "miss"


def test_locks_fence_and_expire(client):
    with lock.acquire("r", ttl=10) as lease:
        first = lease.fencing_token
        assert lease.is_held()
        with pytest.raises(lock.LockTimeout) as err:
            lock.acquire("r", ttl=1)
        assert err.value.status == 503 and err.value.code == "lock_timeout"
    second = lock.acquire("r", ttl=1)
    assert second.fencing_token > first
    client.clock.advance(2)
    with pytest.raises(lock.LockLost) as err:
        second.release()
    assert err.value.status == 409
    with pytest.raises(lock.LockInvalid):
        lock.acquire("", ttl=1)


def test_jobs_enqueue_in_a_transaction_and_run(client):
    assert client.post("/items", json={"name": "a"}).status == 200
    assert [(j.kind, j.json()) for j in client.jobs] == [("count", {"id": 1})]
    with pytest.raises(RuntimeError):
        with sql.begin() as tx:
            jobs.enqueue("count", {"id": 0}, tx=tx)
            raise RuntimeError("rolled back")
    assert len(client.jobs) == 1
    finished = client.run_jobs()
    assert [(j.state, j.result) for j in finished] == [("completed", b'{"n":1,"id":1}')]
    first = jobs.enqueue("count", {}, idempotency_key="k")
    assert jobs.enqueue("count", {}, idempotency_key="k") == first
    with pytest.raises(jobs.UnknownKind) as err:
        jobs.enqueue("nope")
    assert err.value.code == "job_invalid"


def test_job_failures_retries_and_fatal_payloads(client):
    jobs.enqueue("flaky")
    jobs.enqueue("later")
    jobs.enqueue("bad", b"{}")
    done = {j.kind: j for j in client.run_jobs()}
    assert (done["flaky"].state, done["flaky"].attempts) == ("completed", 3)
    assert done["bad"].state == "discarded" and done["bad"].error.startswith("Fatal: the payload")
    assert "later" not in done  # waiting for its retry
    client.clock.advance(61)
    assert [j.state for j in client.run_jobs()] == ["completed"]
    with pytest.raises(jobs.Failed, match="RuntimeError: attempt 1"):
        client.run_job("flaky")
    assert client.run_job("flaky", attempt=3) == b"ok"


def test_config_log_and_trace(client):
    assert config.get("greeting") == "Hi" and config.get("max", int) == 5
    assert config.get("missing", default="x") == "x"
    with pytest.raises(HttpError, match="plugin setting `greeting` has an invalid value"):
        config.get("greeting", int)
    assert config.all() == {"greeting": "Hi", "max": "5"}
    log.info("made", id=7)
    assert client.logs == [("info", "made", {"id": "7"})]
    with pytest.raises(KeyError):
        with trace.span("outer") as outer:
            outer.set("n", 1).child("inner").event("e", k="v").end()
            raise KeyError("x")
    assert [(s.name, s.ended) for s in client.spans] == [("outer", True), ("inner", True)]
    assert client.spans[0].error == "KeyError: 'x'" and client.spans[1].parent is client.spans[0]


def test_a_capability_the_world_does_not_import(tmp_path):
    world = tmp_path / "world.wit"
    world.write_text("world w {\n  import trellis:plugin/sql@0.1.7;\n"
                     "  export trellis:plugin/manifest@0.1.7;\n"
                     "  export trellis:plugin/http-handler@0.1.7;\n"
                     "  export trellis:plugin/migrations@0.1.7;\n"
                     "  export trellis:plugin/job-handler@0.1.7;\n}\n")
    client = testing.Client(make(), world=world)
    with pytest.raises(HttpError) as err:
        cache.get("k")
    assert err.value.code == "capability_missing"
    assert "import trellis:plugin/cache@0.1.7;" in err.value.detail
    world.write_text(world.read_text().replace("  export trellis:plugin/job-handler@0.1.7;\n", ""))
    with pytest.raises(ValueError, match="must export exactly these"):
        testing.Client(make(), world=world)
    client.close()


def test_outbound_http():
    app = App("t", "1", capabilities=["outbound-http"])

    @app.get("/rates")
    def rates(req):
        return http.get("https://api.example.com/rates").raise_for_status().json()

    @app.post("/order")
    def order(req):
        return {"status": http.post_json("https://api.example.com/o", {"item": 7}).status}

    seen = []

    def upstream(request):
        seen.append(request)
        if request.url.endswith("/o"):
            return 201, {"ok": True}
        if request.url == "https://api.example.com/rates":
            return 200, {"eur": 1}
        raise testing.Unreachable("timeout")

    client = testing.Client(app, outbound=upstream)
    assert client.get("/rates").json() == {"eur": 1}
    assert client.post("/order").json() == {"status": 201}
    assert seen[1].body == b'{"item":7}' and ("content-type", "application/json") in seen[1].headers
    with testing.Client(app) as denied:
        r = denied.get("/rates")
        assert r.status == 502 and r.json()["code"] == "bad_gateway"

    def slow(request):
        raise testing.Unreachable("timeout")

    r = testing.Client(app, outbound=slow).get("/rates")
    assert r.status == 504 and r.json()["code"] == "gateway_timeout"


def test_batches_go_through_the_batch_function():
    app = App("t", "1")

    @app.post("/n")
    def create(req):
        return {"one": req.json()}

    @app.batch(create)
    def create_many(requests):
        return [{"many": r.json()} if r.json() else Conflict("taken") for r in requests]

    client = testing.Client(app)
    assert dict(client.exports["Manifest"]().describe().routes[0].options) == {"batch": "true"}
    out = client.batch([("POST", "/n", 1), ("POST", "/n", 0)])
    assert [r.status for r in out] == [200, 409] and out[0].json() == {"many": 1}
    assert client.post("/n", json=2).json() == {"one": 2}

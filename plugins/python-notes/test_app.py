"""Unit tests of python-notes, natively with trellis_sdk.testing: the same
checks as the black-box notes suite (tests/integration/guests.rs), without
a server."""

from pathlib import Path

import pytest

from trellis_sdk import testing

from app import app

WORLD = Path(__file__).parent / "wit" / "world.wit"


@pytest.fixture
def client():
    with testing.Client(app, world=WORLD) as client:
        yield client


def create(client, title, body=""):
    r = client.post("/python-notes", json={"title": title, "body": body})
    assert r.status == 201, r.text
    return r.json()


def test_create_read_from_the_cache_and_index(client):
    note = create(client, "first", "one two three")
    assert set(note) == {"id", "title", "body", "created_at", "updated_at"}
    assert note["created_at"] == note["updated_at"] > 1_600_000_000_000_000
    location = f"/python-notes/{note['id']}"
    assert client.get(location).header("x-trellis-cache") == "miss"
    again = client.get(location)
    assert (again.header("x-trellis-cache"), again.json()) == ("hit", note)
    assert client.get(f"{location}/index").status == 404
    assert [j.kind for j in client.jobs] == ["index-note"]
    client.run_jobs()
    assert client.get(f"{location}/index").json()["words"] == 3


def test_bad_input(client):
    create(client, "first")
    for body, status, code in [({"title": "first"}, 409, "conflict"),
                               ({"title": 7}, 400, "bad_request"),
                               ({"title": "x", "colour": "red"}, 400, "bad_request"),
                               ({"title": "   "}, 422, "unprocessable_content"),
                               ({"title": "x" * 201}, 422, "unprocessable_content")]:
        r = client.post("/python-notes", json=body)
        assert (r.status, r.json()["code"]) == (status, code), body
    assert "title" in client.post("/python-notes", json={"title": 7}).json()["detail"]
    assert client.post("/python-notes", body="{not json").status == 400
    assert client.get("/python-notes/999999").status == 404
    assert client.get("/python-notes/x").status == 400
    assert len(client.jobs) == 1  # no job without its note


def test_pages_and_the_list_cache(client):
    create(client, "first")
    assert len(client.get("/python-notes").json()["items"]) == 1
    create(client, "second")
    create(client, "third")
    titles, target = [], "/python-notes?limit=2"
    while target:
        body = client.get(target).json()
        titles += [n["title"] for n in body["items"]]
        target = body["next_cursor"] and f"/python-notes?limit=2&cursor={body['next_cursor']}"
    assert titles == ["first", "second", "third"]
    for bad in ["?limit=0", "?limit=101", "?limit=ten", "?cursor=42"]:
        assert client.get(f"/python-notes{bad}").status == 400


def test_update_invalidates_and_reindexes_then_delete(client):
    note = create(client, "first", "one two three")
    location = f"/python-notes/{note['id']}"
    client.get(location)
    r = client.put(location, json={"title": "first", "body": "one two three four five"})
    assert r.status == 200 and r.json()["body"] == "one two three four five"
    assert client.get(location).json()["body"] == "one two three four five"
    assert "note:1" in client.cache.invalidated
    client.run_jobs()
    assert client.get(f"{location}/index").json()["words"] == 5
    assert client.put("/python-notes/999999", json={"title": "y"}).status == 404
    assert client.delete(location).status == 204
    assert client.get(location).status == 404
    assert client.delete(location).status == 404


def test_bulk_answers_each_note(client):
    create(client, "first")
    r = client.post("/python-notes/bulk", json=[{"title": "fourth"}, {"title": "first"},
                                                {"title": ""}, {"title": 1}])
    assert [x["status"] for x in r.json()["results"]] == [201, 409, 422, 400]
    assert client.post("/python-notes/bulk", json=[]).status == 400


def test_the_digest_counts_notes(client):
    create(client, "first")
    assert client.run_job("digest", {}) == b'{"notes":1}'
    manifest = client.exports["JobHandler"]()
    assert [(s.name, s.cron, s.kind) for s in manifest.schedules()] == \
        [("hourly-digest", "0 * * * *", "digest")]

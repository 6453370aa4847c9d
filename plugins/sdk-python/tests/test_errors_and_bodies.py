"""problem+json, JSON bodies into dataclasses, and the manifest."""

from dataclasses import dataclass, field
from typing import Optional

from trellis_sdk import (App, BadRequest, Conflict, HttpError, NotFound, Request, RouteCache,
                         Unprocessable, testing)


@dataclass
class Tag:
    name: str


@dataclass
class NoteInput:
    title: str
    body: str = ""
    rank: Optional[int] = None
    tags: list[Tag] = field(default_factory=list)


def make():
    app = App("t", "1.2.3", capabilities=["config"])

    @app.post("/notes")
    def create(req):
        note = req.json(NoteInput)
        return {"title": note.title, "body": note.body, "rank": note.rank,
                "tags": [t.name for t in note.tags]}

    @app.get("/boom")
    def boom(req):
        raise ValueError("secret")

    @app.get("/teapot")
    def teapot(req):
        raise HttpError(418, "short and stout", code="teapot").with_header("retry-after", "1")

    @app.get("/notes/{id}", cache=RouteCache(30, tags=["notes", "note:{id}"], vary=["Accept"]),
             lenient_fields=True, response_schema=lambda: {"type": "object"})
    def get(req, id: int):
        raise NotFound(f"no note {id}")

    return app


def post(body):
    return testing.Client(make()).post("/notes", body=body)


def test_a_valid_body_decodes_into_the_dataclass():
    r = testing.Client(make()).post("/notes", json={"title": "a", "tags": [{"name": "x"}]})
    assert r.json() == {"title": "a", "body": "", "rank": None, "tags": ["x"]}


def test_body_errors_are_400s_naming_the_field():
    cases = {
        '{"title": 7}': "invalid JSON at `title`: invalid type: integer `7`, expected a string",
        '{"body": "x"}': "invalid JSON: missing field `title`",
        '{"title": "a", "colour": "red"}':
            "invalid JSON: unknown field `colour`, expected one of `title`, `body`, `rank`, `tags`",
        '{"title": "a", "tags": [{"name": 1}]}':
            "invalid JSON at `tags[0].name`: invalid type: integer `1`, expected a string",
        '{"title": "a", "rank": true}':
            "invalid JSON at `rank`: invalid type: boolean `true`, expected an integer",
        '[1]': "invalid JSON: invalid type: a sequence, expected struct NoteInput",
    }
    for body, detail in cases.items():
        r = post(body)
        assert r.status == 400, body
        assert r.json()["detail"] == detail
    for body in ["{not json", "", '{"title": NaN}']:
        r = post(body)
        assert r.status == 400 and r.json()["detail"].startswith("invalid JSON"), body


def test_problem_json_has_the_rust_sdks_shape():
    client = testing.Client(make())
    r = client.get("/notes/7", request_id="req-1")
    assert r.status == 404
    assert r.header("content-type") == "application/problem+json"
    assert r.json() == {"type": "about:blank", "title": "Not Found", "status": 404,
                        "detail": "no note 7", "code": "not_found", "request_id": "req-1"}
    r = client.get("/teapot")
    assert (r.status, r.json()["title"], r.json()["code"], r.header("retry-after")) == \
        (418, "Client Error", "teapot", "1")
    assert Unprocessable("x").problem("r")["code"] == "unprocessable_content"
    assert Conflict("x").status == 409 and BadRequest("x").title == "Bad Request"
    assert HttpError(200, "not an error").status == 500


def test_an_uncaught_exception_is_a_500_problem_not_a_trap(capsys):
    r = testing.Client(make()).get("/boom")
    assert r.status == 500
    body = r.json()
    assert body["code"] == "unhandled_exception"
    assert "ValueError" in body["detail"] and "secret" not in body["detail"]
    assert "secret" in capsys.readouterr().err


def test_the_manifest_carries_route_options_like_the_rust_sdk():
    client = testing.Client(make())
    manifest = client.exports["Manifest"]().describe()
    assert (manifest.name, manifest.version, manifest.capabilities) == ("t", "1.2.3", ["config"])
    options = dict(manifest.routes[3].options)
    assert options == {"cache-ttl": "30000ms", "cache-vary": "accept",
                       "cache-tags": "notes,note:{id}", "fields": "lenient",
                       "response-schema": '{"type":"object"}'}


def test_request_accessors():
    req = Request("post", "/x", params=[("id", "7")], headers=[("X-Num", "3")],
                  body=b'{"a": 1}')
    assert req.method == "POST" and req.param("id", int) == 7
    assert req.header("x-num", int) == 3 and req.header("missing") is None
    assert req.json() == {"a": 1} and req.text() == '{"a": 1}'
    bad = Request("GET", "/", body=b"\xff")
    try:
        bad.text()
    except BadRequest as err:
        assert err.detail.startswith("the body is not UTF-8")
    else:
        raise AssertionError("no error")

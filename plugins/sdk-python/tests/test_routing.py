"""Routing and parameters as the host does them."""

import pytest

from trellis_sdk import App, Response, testing
from trellis_sdk._router import PatternError, Router, parse_pattern


def make():
    app = App("t", "1")

    @app.get("/users/{id}")
    def user(req, id: int):
        return {"id": id}

    @app.get("/users/me")
    def me(req):
        return {"me": True}

    @app.get("/files/{*rest}")
    def files(req, rest: str):
        return {"rest": rest}

    @app.get("/hello/{name}")
    def hello(req, name):
        return {"name": name}

    @app.get("/a/{x}/c")
    def axc(req, x):
        return {"x": x}

    @app.get("/a/b/d")
    def abd(req):
        return {"abd": True}

    return app


def test_a_static_segment_wins_over_a_parameter_declared_first():
    client = testing.Client(make())
    assert client.get("/users/me").json() == {"me": True}
    assert client.get("/users/7").json() == {"id": 7}


def test_backtracking_to_a_parameter():
    client = testing.Client(make())
    assert client.get("/a/b/c").json() == {"x": "b"}
    assert client.get("/a/b/d").json() == {"abd": True}


def test_parameters_are_percent_decoded_and_slashes_stay():
    client = testing.Client(make())
    assert client.get("/hello/John%20Smith").json() == {"name": "John Smith"}
    assert client.get("/hello/a%2Fb").json() == {"name": "a/b"}
    assert client.get("/hello/Jos%C3%A9").json() == {"name": "José"}
    assert client.get("/hello/José").json() == {"name": "José"}
    assert client.get("/hello/a+b").json() == {"name": "a+b"}
    r = client.get("/hello/%FF")
    assert r.status == 400
    assert r.json()["detail"] == "path parameter `name` is not UTF-8 once percent-decoded"


def test_catch_all_takes_the_non_empty_rest():
    client = testing.Client(make())
    assert client.get("/files/a/b.txt").json() == {"rest": "a/b.txt"}
    assert client.get("/files/").status == 404
    assert client.get("/files").status == 404


def test_not_found_and_not_allowed_are_the_hosts_problems():
    client = testing.Client(make())
    r = client.get("/users/7/x")
    assert r.status == 404 and r.json()["code"] == "not_found"
    assert r.json()["detail"] == "no route matches /users/7/x"
    assert client.get("/users/").status == 404
    r = client.delete("/users/7")
    assert r.status == 405 and r.json()["code"] == "method_not_allowed"
    assert r.header("allow") == "GET, HEAD"
    head = client.head("/users/7")
    assert head.status == 200 and head.body == b""


def test_typed_parameters_name_the_bad_one():
    client = testing.Client(make())
    r = client.get("/users/abc")
    assert r.status == 400
    assert r.json()["detail"] == "invalid path parameter `id`: `abc`"
    assert client.get("/users/%2B7").json() == {"id": 7}
    assert client.get("/users/99999999999999999999").status == 400
    assert client.get("/users/%207").status == 400


def test_a_handler_parameter_the_route_lacks_fails_at_declaration():
    app = App("t", "1")
    with pytest.raises(TypeError, match="`ident`"):
        @app.get("/x/{id}")
        def bad(req, ident: int):
            return None


def test_patterns_the_host_refuses():
    for pattern in ["/{name}.json", "/v{n}", "/a/{x}-{y}", "/{*rest}/x", "notes"]:
        with pytest.raises(PatternError):
            parse_pattern(pattern)
    with pytest.raises(PatternError):
        Router([("GET", "/a/{x}"), ("GET", "/a/{*rest}")])
    with pytest.raises(PatternError):
        Router([("GET", "/a/{x}"), ("GET", "/a/{y}")])
    with pytest.raises(PatternError):
        Router([("GET", "/a"), ("GET", "/a")])
    assert [s.text for s in parse_pattern("/lit/{{x}}")] == ["lit", "{x}"]


def test_query_parameters():
    app = App("t", "1")

    @app.get("/q")
    def q(req):
        return {"limit": req.query("limit", int, default=20), "tags": req.query_all("tag"),
                "flag": req.query("flag", bool), "name": req.query("name")}

    client = testing.Client(app)
    assert client.get("/q?limit=5&tag=a&tag=b&flag=true&name=a+b%21").json() == {
        "limit": 5, "tags": ["a", "b"], "flag": True, "name": "a b!"}
    assert client.get("/q").json()["limit"] == 20
    r = client.get("/q?limit=ten")
    assert r.status == 400 and r.json()["detail"] == "invalid query parameter `limit`: `ten`"


def test_return_values_become_responses():
    app = App("t", "1")

    @app.get("/none")
    def none(req):
        return None

    @app.get("/text")
    def text(req):
        return "hi"

    @app.post("/made")
    def made(req):
        return Response.created({"id": 1}, "/made/1").with_header("x-a", "b")

    client = testing.Client(app)
    assert client.get("/none").status == 204
    r = client.get("/text")
    assert r.text == "hi" and r.header("content-type") == "text/plain; charset=utf-8"
    r = client.post("/made")
    assert (r.status, r.header("location"), r.header("x-a"), r.json()) == (201, "/made/1", "b",
                                                                          {"id": 1})

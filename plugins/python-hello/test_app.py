"""Unit tests of python-hello, natively with trellis_sdk.testing (run by
plugins/sdk-python/test.sh, or `python3 -m pytest` here with the SDK on
PYTHONPATH)."""

from pathlib import Path

from trellis_sdk import testing

from app import app

WORLD = Path(__file__).parent / "wit" / "world.wit"


def test_hello_uses_the_configured_greeting():
    client = testing.Client(app, config={"greeting": "Hi"}, world=WORLD)
    r = client.get("/hello")
    assert (r.status, r.text) == (200, "Hi, world!")
    assert r.header("content-type").startswith("text/plain")
    assert client.get("/hello/Ada%20L").json() == {"greeting": "Hi, Ada L!"}


def test_the_default_greeting_and_the_hosts_errors():
    client = testing.Client(app, world=WORLD)
    assert client.get("/hello/you").json() == {"greeting": "Hello, you!"}
    r = client.delete("/hello")
    assert (r.status, r.header("allow")) == (405, "GET, HEAD")
    assert client.get("/hello/a/b").json()["code"] == "not_found"

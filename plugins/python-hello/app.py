"""The `hello` example in Python: the same routes and answers as
plugins/hello (Rust), built with componentize-py against the trellis:plugin
world (see wit/world.wit and build.sh)."""

import json

from wit_world import exports
from wit_world.exports import manifest
from wit_world.imports import config, types


def greeting() -> str:
    return config.get("greeting") or "Hello"


class Manifest(exports.Manifest):
    def describe(self) -> manifest.PluginManifest:
        return manifest.PluginManifest(
            name="python-hello",
            version="0.1.0",
            routes=[
                manifest.Route(method="GET", path="/hello", options=[]),
                manifest.Route(method="GET", path="/hello/{name}", options=[]),
            ],
            capabilities=["config"],
        )


class HttpHandler(exports.HttpHandler):
    def handle(self, req: types.Request) -> types.Response:
        # `route` is the index of the matched route in the manifest.
        if req.route == 0:
            return text(200, f"{greeting()}, world!")
        name = dict(req.params)["name"]
        return json_response(200, {"greeting": f"{greeting()}, {name}!"})


def text(status: int, body: str) -> types.Response:
    return types.Response(status, [("content-type", "text/plain; charset=utf-8")], body.encode())


def json_response(status: int, value) -> types.Response:
    return types.Response(status, [("content-type", "application/json")], json.dumps(value).encode())

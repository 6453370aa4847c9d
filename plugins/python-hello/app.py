"""The `hello` example in Python on trellis_sdk: the same routes and answers
as plugins/hello (Rust), built with componentize-py (see build.sh)."""

from trellis_sdk import App, Response, config

app = App("python-hello", "0.1.0", capabilities=["config"])


@app.get("/hello")
def hello(req):
    return Response.text(f"{config.get('greeting', default='Hello')}, world!")


@app.get("/hello/{name}")
def hello_name(req, name: str):
    return {"greeting": f"{config.get('greeting', default='Hello')}, {name}!"}


Manifest, HttpHandler = app.exports()

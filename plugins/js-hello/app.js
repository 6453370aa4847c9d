// The `hello` example in JavaScript: the same routes and answers as
// plugins/hello (Rust), built with componentize-js against the
// trellis:plugin world (see wit/world.wit and build.sh). Each exported
// interface is an object named after it in camelCase; records are plain
// objects, `list<tuple<string, string>>` is an array of pairs and
// `list<u8>` a Uint8Array.
import { get } from "trellis:plugin/config@0.1.7";

const encoder = new TextEncoder();

function greeting() {
  return get("greeting") ?? "Hello";
}

export const manifest = {
  describe() {
    return {
      name: "js-hello",
      version: "0.1.0",
      routes: [
        { method: "GET", path: "/hello", options: [] },
        { method: "GET", path: "/hello/{name}", options: [] },
      ],
      capabilities: ["config"],
    };
  },
};

export const httpHandler = {
  handle(req) {
    // `route` is the index of the matched route in the manifest.
    if (req.route === 0) {
      return text(200, `${greeting()}, world!`);
    }
    const name = new Map(req.params).get("name");
    return json(200, { greeting: `${greeting()}, ${name}!` });
  },
};

function text(status, body) {
  return {
    status,
    headers: [["content-type", "text/plain; charset=utf-8"]],
    body: encoder.encode(body),
  };
}

function json(status, value) {
  return {
    status,
    headers: [["content-type", "application/json"]],
    body: encoder.encode(JSON.stringify(value)),
  };
}

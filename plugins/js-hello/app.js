// The `hello` example in JavaScript, on the SDK (../sdk-js): the same routes
// and answers as plugins/hello (Rust). Built with componentize-js against
// its own world (wit/world.wit, which imports `config` only).
import { App, Response } from "../sdk-js/src/index.js";
import * as config from "trellis:plugin/config@0.1.7";

export const app = new App("js-hello", "0.1.0", { config });
const greeting = () => app.config.get("greeting") ?? "Hello";

app.get("/hello", () => Response.text(`${greeting()}, world!`));
app.get("/hello/{name}", (req) => ({ greeting: `${greeting()}, ${req.param("name")}!` }));

export const { manifest, httpHandler } = app.exports();

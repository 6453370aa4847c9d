// `node --import <sdk>/src/testing/register.js`: registers the hooks that
// let an app's `trellis:plugin/...` imports load under Node, before any
// module is imported (so a test may import the app statically). Importing
// the testing module registers them too, for apps imported after it
// (`const { app } = await import("./app.js")`).

import { register } from "node:module";

const KEY = Symbol.for("trellis.sdk.testing.hooks");
if (!globalThis[KEY]) {
  globalThis[KEY] = true;
  register("./loader.js", import.meta.url);
}

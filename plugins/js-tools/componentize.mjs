// node componentize.mjs SOURCE WIT_DIR WORLD OUT [FEATURE...]: one component
// from a JavaScript module, with the StarlingMonkey features a plugin has no
// use for left out (its outgoing fetch, stdio, random and clocks imports)
// except each FEATURE named (e.g. `clocks`, for a plugin that reads the
// time with Date.now()).
//
// The module may import others by relative path: componentize-js follows
// them, but only inside the current directory (it maps it into the engine
// as `/`), so run it from a directory that holds them all.
import { componentize } from "@bytecodealliance/componentize-js";
import { writeFile } from "node:fs/promises";

const [sourcePath, witPath, worldName, out, ...keep] = process.argv.slice(2);
const unused = ["http", "fetch-event", "stdio", "random", "clocks"];
const { component } = await componentize({
  sourcePath,
  witPath,
  worldName,
  disableFeatures: unused.filter((feature) => !keep.includes(feature)),
});
await writeFile(out, component);

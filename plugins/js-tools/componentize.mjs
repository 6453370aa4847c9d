// node componentize.mjs SOURCE WIT_DIR WORLD OUT: one component from a
// JavaScript module, with the StarlingMonkey features a plugin has no use
// for left out (its outgoing fetch, stdio, random and clocks imports).
import { componentize } from "@bytecodealliance/componentize-js";
import { writeFile } from "node:fs/promises";

const [sourcePath, witPath, worldName, out] = process.argv.slice(2);
const { component } = await componentize({
  sourcePath,
  witPath,
  worldName,
  disableFeatures: ["http", "fetch-event", "stdio", "random", "clocks"],
});
await writeFile(out, component);

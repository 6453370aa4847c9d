// Module hooks (node:module `register`) that let Node import an app's
// `trellis:plugin/<interface>@<version>` modules: each resolves to a
// generated module re-exporting the stand-ins of host.js.

import { INTERFACE_EXPORTS } from "./host.js";

const PREFIX = "trellis:plugin/";
const HOST = new URL("./host.js", import.meta.url).href;

export async function resolve(specifier, context, next) {
  if (!specifier.startsWith(PREFIX)) return next(specifier, context);
  const iface = specifier.slice(PREFIX.length).split("@")[0];
  if (!INTERFACE_EXPORTS[iface]) {
    throw new Error(`cannot import ${specifier}: trellis:plugin has no interface \`${iface}\``);
  }
  return { url: `${PREFIX}${iface}`, shortCircuit: true };
}

export async function load(url, context, next) {
  if (!url.startsWith(PREFIX)) return next(url, context);
  const iface = url.slice(PREFIX.length);
  const names = INTERFACE_EXPORTS[iface];
  const source = [
    `import { facade } from ${JSON.stringify(HOST)};`,
    `const m = facade(${JSON.stringify(iface)});`,
    ...names.map((name, i) => `const e${i} = m[${JSON.stringify(name)}];`),
    `export { ${names.map((name, i) => `e${i} as ${name}`).join(", ")} };`,
  ].join("\n");
  return { format: "module", source, shortCircuit: true };
}

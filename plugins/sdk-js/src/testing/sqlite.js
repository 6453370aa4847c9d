// The SQLite behind the testing module's `sql`: Node's built-in
// `node:sqlite` (Node 22.5 and later), else the `sql.js` package (SQLite
// compiled to WebAssembly; a dev dependency, `npm install --save-dev
// sql.js`). Either is real SQLite, so statements, constraints, RETURNING
// and upserts behave as on the host's embedded default.

import { createRequire } from "node:module";

/** `$1`, `$2`, ... (outside quotes) as SQLite's `?1`, `?2`, ... */
export function numberedPlaceholders(statement) {
  return statement.replace(/('(?:[^']|'')*'|"(?:[^"]|"")*")|\$(\d+)/g, (match, quoted, n) => quoted ?? `?${n}`);
}

/** A WIT `value` variant as what SQLite binds. */
function bindable(value) {
  switch (value.tag) {
    case "null":
      return null;
    case "boolean":
      return value.val ? 1 : 0;
    default:
      return value.val;
  }
}

/** What SQLite returned as a WIT `value` variant. */
export function toWitValue(value) {
  if (value === null || value === undefined) return { tag: "null" };
  if (typeof value === "bigint") return { tag: "integer", val: value };
  if (typeof value === "number") return Number.isInteger(value) ? { tag: "integer", val: BigInt(value) } : { tag: "real", val: value };
  if (typeof value === "string") return { tag: "text", val: value };
  return { tag: "blob", val: new Uint8Array(value) };
}

async function loadEngine() {
  try {
    const { DatabaseSync } = await import("node:sqlite");
    return { name: "node:sqlite", open: () => nodeSqlite(new DatabaseSync(":memory:")) };
  } catch {
    // Older Node: fall back to sql.js.
  }
  const require = createRequire(import.meta.url);
  let initSqlJs;
  try {
    initSqlJs = require("sql.js");
  } catch {
    throw new Error(
      `the testing module needs SQLite: Node 22.5 or later (node:sqlite; this is ${process.version}) ` +
        "or the sql.js package (npm install --save-dev sql.js)",
    );
  }
  const SQL = await initSqlJs();
  return { name: "sql.js", open: () => sqlJs(new SQL.Database()) };
}

/** The engine this Node has, loaded once. */
export const engine = await loadEngine();

/**
 * A database: `exec(script)` runs statements without parameters (a
 * migration); `run(statement, values)` one statement with WIT values, as
 * `{columns, rows, changes}` with WIT values in the rows.
 */
function sqlJs(db) {
  return {
    exec: (script) => db.exec(script),
    run(statement, values) {
      const stmt = db.prepare(numberedPlaceholders(statement));
      try {
        stmt.bind(values.map(bindable));
        const rows = [];
        while (stmt.step()) rows.push(stmt.get(null, { useBigInt: true }).map(toWitValue));
        return { columns: stmt.getColumnNames(), rows, changes: db.getRowsModified() };
      } finally {
        stmt.free();
      }
    },
  };
}

function nodeSqlite(db) {
  return {
    exec: (script) => db.exec(script),
    run(statement, values) {
      const stmt = db.prepare(numberedPlaceholders(statement));
      stmt.setReadBigInts(true);
      const params = values.map(bindable);
      // columns() (Node 22.16) names the columns of an empty result too.
      const columns = typeof stmt.columns === "function" ? stmt.columns().map((c) => c.name) : undefined;
      const before = db.prepare("SELECT total_changes() AS n").get().n;
      const objects = stmt.all(...params);
      const after = db.prepare("SELECT total_changes() AS n").get().n;
      const names = columns ?? Object.keys(objects[0] ?? {});
      return { columns: names, rows: objects.map((o) => names.map((n) => toWitValue(o[n]))), changes: Number(after - before) };
    },
  };
}

// The plugin's own database (the `sql` capability): SQLite by default or a
// PostgreSQL schema of its own. Use `$1`, `$2`, ... placeholders: they work
// on both. Rows come back as objects keyed by column name.
//
// Parameters: null/undefined is NULL, an integer number or a bigint an
// integer, another number a real, a string text, a boolean a boolean, a
// Uint8Array a blob, a Date a timestamp, any other object or array JSON;
// sqlValue.real/json/timestamp/... say it explicitly.
//
// Column values: integers and timestamps are numbers (bigints beyond
// 2^53), JSON columns parsed, blobs Uint8Arrays.

import { HttpError, hostCall } from "./errors.js";
import { disposeHandle } from "./resource.js";

/** An explicitly typed parameter (see `sqlValue`). */
class Typed {
  constructor(tag, val) {
    this.tag = tag;
    this.val = val;
  }
}

const micros = (value) => BigInt(value instanceof Date ? value.getTime() * 1000 : value);

/** Explicitly typed parameters, where the JavaScript type is ambiguous. */
export const sqlValue = {
  null: () => new Typed("null", undefined),
  integer: (n) => new Typed("integer", BigInt(n)),
  real: (x) => new Typed("real", Number(x)),
  text: (s) => new Typed("text", String(s)),
  blob: (bytes) => new Typed("blob", bytes),
  boolean: (b) => new Typed("boolean", Boolean(b)),
  /** JSON text of `value` (jsonb on PostgreSQL). */
  json: (value) => new Typed("json", JSON.stringify(value)),
  /** Microseconds since the epoch, or a Date (timestamptz on PostgreSQL). */
  timestamp: (value) => new Typed("timestamp", micros(value)),
};

/** A JavaScript value as the WIT `value` variant. */
export function toValue(value) {
  if (value instanceof Typed) {
    return value.val === undefined ? { tag: value.tag } : { tag: value.tag, val: value.val };
  }
  if (value === null || value === undefined) return { tag: "null" };
  switch (typeof value) {
    case "bigint":
      return { tag: "integer", val: value };
    case "number":
      return Number.isInteger(value) ? { tag: "integer", val: BigInt(value) } : { tag: "real", val: value };
    case "string":
      return { tag: "text", val: value };
    case "boolean":
      return { tag: "boolean", val: value };
    default:
      if (value instanceof Uint8Array) return { tag: "blob", val: value };
      if (value instanceof Date) return { tag: "timestamp", val: micros(value) };
      return { tag: "json", val: JSON.stringify(value) };
  }
}

/** A bigint as a number when that loses nothing. */
export function toNumber(n) {
  return typeof n === "bigint" && n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(n)
    : n;
}

/** The WIT `value` variant as a JavaScript value. */
export function fromValue(value) {
  switch (value.tag) {
    case "null":
      return null;
    case "integer":
    case "timestamp":
      return toNumber(value.val);
    case "json":
      try {
        return JSON.parse(value.val);
      } catch {
        return value.val;
      }
    default:
      return value.val;
  }
}

/** The host's `rows` record as an array of row objects (with `columns`). */
function toObjects(rows) {
  const objects = rows.rows.map((row) => {
    const object = {};
    rows.columns.forEach((column, i) => {
      object[column] = fromValue(row[i]);
    });
    return object;
  });
  Object.defineProperty(objects, "columns", { value: rows.columns });
  return objects;
}

const STATUS = { "constraint-violation": 409, unavailable: 503, timeout: 504 };

/**
 * A failed statement: an HttpError (409 for a constraint violation, 503
 * with retry-after for an unavailable database, 504 for a timeout, else
 * 500; code `sql_<kind>`) that also says which WIT error it was: `kind`
 * (`constraint-violation`, `syntax`, ...) and the database's `message`.
 */
export class SqlError extends HttpError {
  constructor(kind, message) {
    const status = STATUS[kind] ?? 500;
    super(status, `database: ${message}`, { code: `sql_${kind.replaceAll("-", "_")}` });
    this.name = "SqlError";
    this.kind = kind;
    this.dbMessage = message;
    if (status === 503) this.withHeader("retry-after", "1");
  }

  /** A unique, foreign key, not-null or check constraint failed. */
  get isConstraintViolation() {
    return this.kind === "constraint-violation";
  }

  /** A unique constraint (or primary key) failed, on SQLite or PostgreSQL. */
  get isUniqueViolation() {
    return this.isConstraintViolation && /unique|duplicate key/i.test(this.dbMessage);
  }
}

/** Runs a host call, its WIT error thrown as this capability's error. */
const call = (f) => hostCall(f, (p) => new SqlError(p.tag, p.val ?? "the transaction is already finished"));

const params = (list) => (list ?? []).map(toValue);

/** A transaction; `commit` it, or `rollback` (what a throw in `sql.transaction` does). */
export class Transaction {
  constructor(raw) {
    /** The host's resource, for `jobs.enqueueIn`. */
    this.raw = raw;
  }

  /** Rows of a statement run inside the transaction. */
  query(statement, values) {
    return toObjects(call(() => this.raw.query(statement, params(values))));
  }

  /** The first row, or undefined. */
  queryOne(statement, values) {
    return this.query(statement, values)[0];
  }

  /** Runs a statement inside the transaction; the number of rows it changed. */
  execute(statement, values) {
    return Number(call(() => this.raw.execute(statement, params(values))));
  }

  /** Commits; the transaction is finished either way. */
  commit() {
    call(() => this.raw.commit());
  }

  /** Rolls back now (the host drops the transaction). */
  rollback() {
    disposeHandle(this.raw);
  }
}

/** The `sql` helpers over the host's `trellis:plugin/sql` interface. */
export function makeSql(host) {
  const sql = {
    /**
     * Rows of a statement, as objects. Options: `replica: true` lets a
     * read replica answer; `cacheTtlMs: n` lets the host's query cache
     * answer for up to n ms (a replica too); otherwise the primary.
     */
    query(statement, values, { replica = false, cacheTtlMs } = {}) {
      if (cacheTtlMs !== undefined) {
        const ttl = Math.min(Math.max(0, Math.floor(cacheTtlMs)), 0xffffffff);
        return toObjects(call(() => host.queryCached(statement, params(values), "replica-ok", ttl)));
      }
      return toObjects(call(() => host.query(statement, params(values), replica ? "replica-ok" : "primary")));
    },

    /** The first row, or undefined (same options as query). */
    queryOne(statement, values, options) {
      return sql.query(statement, values, options)[0];
    },

    /** Runs a statement; the number of rows it changed. */
    execute(statement, values) {
      return Number(call(() => host.execute(statement, params(values))));
    },

    /** Starts a transaction on the primary. */
    begin() {
      return new Transaction(call(() => host.begin()));
    },

    /**
     * Runs `fn(tx)` in a transaction and commits it; a throw rolls it back
     * and is rethrown. Returns what `fn` returned.
     */
    transaction(fn) {
      const tx = sql.begin();
      let value;
      try {
        value = fn(tx);
      } catch (err) {
        tx.rollback();
        throw err;
      }
      tx.commit();
      return value;
    },

    /**
     * Writes one row only if `token` (a lock lease's fencing token) is newer
     * than the one stored with it, in one upsert; true when written, false
     * for a stale holder. See the Rust SDK's `sql::fenced_write`.
     */
    fencedWrite(table, keyColumn, key, columns, fenceColumn, token) {
      const names = [keyColumn, ...Object.keys(columns), fenceColumn];
      for (const name of [table, ...names]) checkIdentifier(name);
      const placeholders = names.map((_, i) => `$${i + 1}`).join(", ");
      const updates = names.slice(1).map((name) => `${name} = excluded.${name}`).join(", ");
      const statement =
        `INSERT INTO ${table} (${names.join(", ")}) VALUES (${placeholders}) ` +
        `ON CONFLICT (${keyColumn}) DO UPDATE SET ${updates} ` +
        `WHERE ${table}.${fenceColumn} < excluded.${fenceColumn}`;
      const max = (1n << 63n) - 1n;
      const fence = BigInt(token) > max ? max : BigInt(token);
      return sql.execute(statement, [key, ...Object.values(columns), fence]) > 0;
    },
  };
  return sql;
}

/** An identifier safe to splice into SQL unquoted, or a 500 naming it. */
function checkIdentifier(name) {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
    throw new HttpError(500, `invalid identifier \`${name}\`: use ASCII letters, digits and \`_\`, not starting with a digit`);
  }
}

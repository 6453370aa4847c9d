// Light validation of parsed JSON: required and typed fields, unknown
// fields refused, a 400 naming the field (`items[2].title`) like the Rust
// SDK's `req.json::<T>()`.
//
// A schema is
//   - a type name: "string", "number", "int", "boolean", "object" (any
//     object), "array" (any array) or "any"; "string?" allows null;
//   - [schema]: an array whose items match schema;
//   - { field: schema, ... }: an object with exactly these fields, each
//     required unless wrapped in optional(schema, default).

import { BadRequest } from "./errors.js";

const OPTIONAL = Symbol("optional");

/**
 * A field that may be absent: absent, it is `defaultValue` (or stays
 * absent when there is none).
 */
export function optional(schema, defaultValue) {
  return { [OPTIONAL]: true, schema, defaultValue };
}

function kind(value) {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  if (typeof value === "number") return Number.isInteger(value) ? "an integer" : "a number";
  return `a ${typeof value}`;
}

const CHECKS = {
  string: [(v) => typeof v === "string", "a string"],
  number: [(v) => typeof v === "number", "a number"],
  int: [(v) => Number.isSafeInteger(v), "an integer"],
  boolean: [(v) => typeof v === "boolean", "a boolean"],
  object: [(v) => v !== null && typeof v === "object" && !Array.isArray(v), "an object"],
  array: [(v) => Array.isArray(v), "an array"],
  any: [() => true, "any value"],
};

function fail(path, message) {
  return new BadRequest(path === "" ? `invalid JSON: ${message}` : `invalid JSON at \`${path}\`: ${message}`);
}

function join(path, field) {
  return path === "" ? field : `${path}.${field}`;
}

/**
 * `value` checked against `schema`; returns it with the defaults of absent
 * optional fields filled in. A mismatch is a BadRequest naming the field.
 */
export function validate(value, schema, path = "") {
  if (typeof schema === "string") {
    const nullable = schema.endsWith("?");
    const name = nullable ? schema.slice(0, -1) : schema;
    const check = CHECKS[name];
    if (!check) {
      throw new TypeError(`unknown schema type \`${schema}\` (use ${Object.keys(CHECKS).join(", ")})`);
    }
    if (value === null && nullable) return value;
    if (!check[0](value)) throw fail(path, `expected ${check[1]}, got ${kind(value)}`);
    return value;
  }
  if (Array.isArray(schema)) {
    if (schema.length !== 1) throw new TypeError("an array schema holds exactly one item schema: [schema]");
    if (!Array.isArray(value)) throw fail(path, `expected an array, got ${kind(value)}`);
    return value.map((item, i) => validate(item, schema[0], `${path}[${i}]`));
  }
  if (schema === null || typeof schema !== "object" || schema[OPTIONAL]) {
    throw new TypeError("a schema is a type name, [schema] or an object of field schemas");
  }
  if (!CHECKS.object[0](value)) throw fail(path, `expected an object, got ${kind(value)}`);
  const known = Object.keys(schema);
  for (const field of Object.keys(value)) {
    if (!Object.hasOwn(schema, field)) {
      const expected = known.map((k) => `\`${k}\``).join(", ");
      throw fail(join(path, field), `unknown field, expected one of ${expected}`);
    }
  }
  const out = { ...value };
  for (const field of known) {
    const spec = schema[field];
    const optionalField = Boolean(spec[OPTIONAL]);
    if (!Object.hasOwn(value, field) || (optionalField && value[field] === undefined)) {
      if (!optionalField) throw fail(join(path, field), "missing field");
      if (spec.defaultValue !== undefined) out[field] = structuredCloneOf(spec.defaultValue);
      continue;
    }
    out[field] = validate(value[field], optionalField ? spec.schema : spec, join(path, field));
  }
  return out;
}

/** A fresh copy of a default, so handlers may change what they get. */
function structuredCloneOf(value) {
  return value !== null && typeof value === "object" ? JSON.parse(JSON.stringify(value)) : value;
}

// Type declarations of the Trellis plugin SDK for JavaScript (src/index.js).

/** `[name, value]` pairs: headers, parameters, fields. */
export type Pairs = [string, string][];
/** Headers or fields as pairs or an object. */
export type FieldsInit = Pairs | Record<string, string | number | boolean>;
/** Bytes, or a string sent as UTF-8. */
export type BytesInit = Uint8Array | ArrayBufferView | ArrayBuffer | string;

/** The `trellis:plugin/...` modules an app imports and hands to `new App`. */
export interface HostInterfaces {
  sql?: object;
  cache?: object;
  jobs?: object;
  lock?: object;
  config?: object;
  log?: object;
  trace?: object;
  /** `trellis:plugin/outbound-http`. */
  http?: object;
}

/** A parser: a name, or a function returning the value (undefined for a bad one). */
export type ParamType = "string" | "int" | "number" | "bool" | ((text: string) => unknown);
type Parsed<T> = T extends "int" | "number" ? number : T extends "bool" ? boolean : T extends (text: string) => infer R ? Exclude<R, undefined> : string;

/** A light schema: a type name, `[schema]`, or an object of field schemas. */
export type Schema =
  | "string" | "number" | "int" | "boolean" | "object" | "array" | "any"
  | "string?" | "number?" | "int?" | "boolean?" | "object?" | "array?" | "any?"
  | [Schema]
  | { [field: string]: Schema | Optional };
export interface Optional {
  readonly schema: Schema;
  readonly defaultValue: unknown;
}
/** A field that may be absent; absent, it is `defaultValue` (when given). */
export function optional(schema: Schema, defaultValue?: unknown): Optional;
/** `value` checked against `schema` (defaults filled in); a BadRequest naming the field otherwise. */
export function validate<T = any>(value: unknown, schema: Schema, path?: string): T;

/** The host's `types.request` record. */
export interface RawRequest {
  route: number;
  method: string;
  path: string;
  params: Pairs;
  query: Pairs;
  headers: Pairs;
  body: Uint8Array;
  requestId: string;
}

/** The host's `types.response` record. */
export interface RawResponse {
  status: number;
  headers: Pairs;
  body: Uint8Array;
}

export class Request {
  constructor(raw: RawRequest);
  readonly raw: RawRequest;
  readonly method: string;
  /** As sent, without the query string. */
  readonly path: string;
  readonly requestId: string;
  /** Percent-decoded, in pattern order. */
  readonly params: Pairs;
  readonly queryPairs: Pairs;
  /** Lower-case names. */
  readonly headers: Pairs;
  readonly body: Uint8Array;
  /** A path parameter, parsed as `type`; a bad value is a 400 naming it. */
  param<T extends ParamType = "string">(name: string, type?: T): Parsed<T>;
  /** A query parameter (undefined when absent), parsed as `type`; a bad value is a 400 naming it. */
  query<T extends ParamType = "string">(name: string, type?: T): Parsed<T> | undefined;
  queryAll(name: string): string[];
  /** A header (any case), parsed as `type`; a bad value is a 400 naming it. */
  header<T extends ParamType = "string">(name: string, type?: T): Parsed<T> | undefined;
  /** The body as UTF-8; a 400 when it is not. */
  text(): string;
  /** The body as JSON, checked against `schema` when given; a 400 naming the field. */
  json<T = any>(schema?: Schema): T;
}

export class Response {
  constructor(status?: number, init?: { headers?: FieldsInit; body?: BytesInit });
  status: number;
  headers: Pairs;
  body: Uint8Array;
  static json(value: unknown, status?: number): Response;
  static text(text: string, status?: number): Response;
  static bytes(bytes: BytesInit, contentType?: string, status?: number): Response;
  static noContent(): Response;
  static created(location: string, value?: unknown): Response;
  /** A handler's return value as a Response (see README). */
  static from(value: unknown): Response;
  withStatus(status: number): this;
  withHeader(name: string, value: string | number): this;
  withBody(body: BytesInit): this;
  header(name: string): string | undefined;
  text(): string;
  json<T = any>(): T;
  toRaw(): RawResponse;
}

/** What a handler may return: a Response, undefined (204), a string (text), bytes, or JSON. */
export type HandlerResult = Response | string | Uint8Array | object | number | boolean | null | undefined;
export type Handler = (req: Request, app: App) => HandlerResult;
export type BatchHandler = (requests: Request[], app: App) => (HandlerResult | Error)[];
export type JobHandler = (job: Job, app: App) => Uint8Array | string | object | undefined;

export interface RouteOptions {
  /** The host caches this GET route's responses (`cache-ttl`, `cache-vary`, `cache-tags`). */
  cache?: { ttlMs: number; vary?: string[]; tags?: string[] };
  /** `?fields=` skips fields the response lacks instead of a 400. */
  lenientFields?: boolean;
  /** Serves many requests of a batch at once (export `batchHandler`). */
  batch?: BatchHandler;
  requestSchema?: object | boolean | (() => object | boolean);
  responseSchema?: object | boolean | (() => object | boolean);
}

export interface Migration {
  id: number;
  name: string;
  sqlite: string;
  postgres: string;
}

export interface JobKindOptions {
  queue?: string;
  maxAttempts?: number;
  timeoutMs?: number;
  priority?: number;
}

export interface Manifest {
  name: string;
  version: string;
  routes: { method: string; path: string; options: Pairs }[];
  capabilities: string[];
}

export interface Exports {
  manifest: { describe(): Manifest };
  httpHandler: { handle(req: RawRequest): RawResponse };
  migrations: { all(): Migration[] };
  jobHandler: {
    kinds(): { name: string; queue: string; maxAttempts: number; timeoutMs: number; priority: number }[];
    schedules(): { name: string; cron: string; kind: string; payload: Uint8Array }[];
    run(job: RawJob): Uint8Array;
  };
  batchHandler: { handleBatch(requests: RawRequest[]): RawResponse[] };
}

export class App {
  constructor(name: string, version: string, host?: HostInterfaces);
  readonly name: string;
  readonly version: string;
  readonly routes: { method: string; path: string; handler: Handler; options: RouteOptions }[];
  readonly capabilities: string[];
  readonly sql: Sql;
  readonly cache: Cache;
  readonly jobs: Jobs;
  readonly lock: Lock;
  readonly config: Config;
  readonly log: Log;
  readonly trace: Trace;
  /** Outbound HTTP. */
  readonly http: Http;
  capability(name: string): this;
  route(method: string, path: string, handler: Handler, options?: RouteOptions): this;
  get(path: string, handler: Handler, options?: RouteOptions): this;
  post(path: string, handler: Handler, options?: RouteOptions): this;
  put(path: string, handler: Handler, options?: RouteOptions): this;
  patch(path: string, handler: Handler, options?: RouteOptions): this;
  delete(path: string, handler: Handler, options?: RouteOptions): this;
  migration(migration: Migration): this;
  job(kind: string, handler: JobHandler, options?: JobKindOptions): this;
  schedule(name: string, cron: string, kind: string, payload?: BytesInit | object): this;
  describe(): Manifest;
  handle(raw: RawRequest): RawResponse;
  handleBatch(raws: RawRequest[]): RawResponse[];
  runJob(raw: RawJob): Uint8Array;
  exports(): Exports;
}

export interface HttpErrorOptions {
  code?: string;
  headers?: Pairs;
}
export class HttpError extends Error {
  constructor(status: number, detail: string, options?: HttpErrorOptions);
  status: number;
  detail: string;
  code: string | undefined;
  headers: Pairs;
  withHeader(name: string, value: string | number): this;
  withCode(code: string): this;
  withFingerprint(fingerprint: string): this;
  toResponse(requestId: string): Response;
}
type FixedError = new (detail: string, options?: HttpErrorOptions) => HttpError;
export const BadRequest: FixedError;
export const Unauthorized: FixedError;
export const Forbidden: FixedError;
export const NotFound: FixedError;
export const MethodNotAllowed: FixedError;
export const Conflict: FixedError;
export const Gone: FixedError;
export const ContentTooLarge: FixedError;
export const UnsupportedMediaType: FixedError;
export const Unprocessable: FixedError;
export const TooManyRequests: FixedError;
export const InternalError: FixedError;
export const NotImplemented: FixedError;
export const BadGateway: FixedError;
export const ServiceUnavailable: FixedError;
export const GatewayTimeout: FixedError;

// Pagination.
export function encodeCursor(state: unknown): string;
export function decodeCursor<T = any>(cursor: string, schema?: Schema): T;
export function pageOf<T = any>(req: Request, options?: { defaultLimit?: number; max?: number; cursor?: Schema }): { limit: number; after: T | undefined };
export function pageResponse<T>(items: T[], limit: number, cursorOf: (item: T) => unknown): Response;

// sql.
export type SqlParam = null | undefined | number | bigint | string | boolean | Uint8Array | Date | object | SqlValue;
export interface SqlValue {
  readonly tag: string;
}
export const sqlValue: {
  null(): SqlValue;
  integer(n: number | bigint): SqlValue;
  real(x: number): SqlValue;
  text(s: string): SqlValue;
  blob(bytes: Uint8Array): SqlValue;
  boolean(b: boolean): SqlValue;
  json(value: unknown): SqlValue;
  timestamp(micros: number | bigint | Date): SqlValue;
};
/** A row: column name to value (numbers, bigints beyond 2^53, strings, parsed JSON, Uint8Arrays, null). */
export type Row = Record<string, any>;
export type Rows<T = Row> = T[] & { readonly columns: string[] };
export interface QueryOptions {
  /** A read replica may answer. */
  replica?: boolean;
  /** The host's query cache may answer for up to this many ms. */
  cacheTtlMs?: number;
}
export class SqlError extends HttpError {
  /** The WIT error: `constraint-violation`, `syntax`, `permission-denied`, `timeout`, `unavailable`, `invalid`, `transaction-closed`. */
  kind: string;
  dbMessage: string;
  readonly isConstraintViolation: boolean;
  readonly isUniqueViolation: boolean;
}
export class Transaction {
  readonly raw: object;
  query<T = Row>(statement: string, params?: SqlParam[]): Rows<T>;
  queryOne<T = Row>(statement: string, params?: SqlParam[]): T | undefined;
  execute(statement: string, params?: SqlParam[]): number;
  commit(): void;
  rollback(): void;
}
export interface Sql {
  query<T = Row>(statement: string, params?: SqlParam[], options?: QueryOptions): Rows<T>;
  queryOne<T = Row>(statement: string, params?: SqlParam[], options?: QueryOptions): T | undefined;
  execute(statement: string, params?: SqlParam[]): number;
  begin(): Transaction;
  transaction<T>(fn: (tx: Transaction) => T): T;
  fencedWrite(table: string, keyColumn: string, key: SqlParam, columns: Record<string, SqlParam>, fenceColumn: string, token: number | bigint): boolean;
}

// cache.
export interface EntryOptions {
  ttlMs: number;
  tags?: string[];
}
export class CacheError extends HttpError {
  /** `too-large` or `invalid`. */
  kind: string;
  /** The host's limit in bytes, for `too-large`. */
  limit?: number;
}
export interface Loader {
  fill(value: BytesInit | undefined, options: EntryOptions): void;
  fail(message: string): void;
}
export interface Cache {
  get(key: string): Uint8Array | undefined;
  getMany(keys: string[]): (Uint8Array | undefined)[];
  set(key: string, value: BytesInit, options: EntryOptions): void;
  delete(key: string): void;
  invalidateTag(tag: string): void;
  getJson<T = any>(key: string): T | undefined;
  setJson(key: string, value: unknown, options: EntryOptions): void;
  fetch(key: string): { hit: Uint8Array } | { absent: true } | { loader: Loader };
  getOrLoad<T>(key: string, options: EntryOptions, load: () => T | null | undefined): T | undefined;
}

// jobs.
export interface RawJob {
  id: string;
  kind: string;
  payload: Uint8Array;
  attempt: number;
  maxAttempts: number;
  idempotencyKey: string | undefined;
  enqueuedAt: bigint;
}
export class Job {
  constructor(raw: RawJob);
  id: string;
  kind: string;
  payload: Uint8Array;
  attempt: number;
  maxAttempts: number;
  idempotencyKey: string | undefined;
  enqueuedAt: number;
  readonly isLastAttempt: boolean;
  text(): string;
  json<T = any>(): T;
}
export class JobError extends Error {
  payload: { tag: string; val: unknown };
  static failed(message: string): JobError;
  static retryIn(delayMs: number, message: string): JobError;
  static fatal(message: string): JobError;
  static snooze(delayMs: number): JobError;
  static from(err: unknown): JobError;
}
export class EnqueueError extends HttpError {
  /** `unknown-kind`, `too-large`, `invalid` or `unavailable`. */
  kind: string;
}
export interface EnqueueOptions {
  delayMs?: number;
  priority?: number;
  queue?: string;
  maxAttempts?: number;
  idempotencyKey?: string;
}
export interface Jobs {
  enqueue(kind: string, payload?: BytesInit | object, options?: EnqueueOptions): string;
  enqueueIn(tx: Transaction, kind: string, payload?: BytesInit | object, options?: EnqueueOptions): string;
}

// lock.
export class Lease {
  readonly fencingToken: number | bigint;
  readonly validUntil: number;
  extend(ttlMs: number): void;
  isHeld(): boolean;
  release(): void;
}
export class LockError extends HttpError {
  /** `timeout`, `lost`, `unavailable` or `invalid`. */
  kind: string;
}
export interface Lock {
  acquire(name: string, options?: { ttlMs?: number; waitMs?: number }): Lease;
  withLock<T>(name: string, fn: (lease: Lease) => T, options?: { ttlMs?: number; waitMs?: number }): T;
}

// config, log, trace.
export interface Config {
  get<T extends ParamType = "string">(key: string, type?: T): Parsed<T> | undefined;
  all(): Record<string, string>;
}
export interface Log {
  trace(message: string, fields?: FieldsInit): void;
  debug(message: string, fields?: FieldsInit): void;
  info(message: string, fields?: FieldsInit): void;
  warn(message: string, fields?: FieldsInit): void;
  error(message: string, fields?: FieldsInit): void;
}
export class Span {
  child(name: string): Span;
  set(key: string, value: unknown): this;
  event(name: string, attributes?: FieldsInit): this;
  error(message: string): this;
  end(): void;
}
export interface Trace {
  start(name: string): Span;
  inSpan<T>(name: string, fn: (span: Span) => T): T;
}

// Outbound HTTP.
export class HttpResponse {
  readonly url: string;
  readonly status: number;
  readonly headers: Pairs;
  readonly body: Uint8Array;
  readonly ok: boolean;
  header(name: string): string | undefined;
  text(): string;
  json<T = any>(): T;
  errorForStatus(): this;
}
export class OutboundError extends HttpError {
  /** `denied`, `invalid`, `connect`, `timeout`, `too-large`, `limited` or `failed`. */
  kind: string;
}
export interface FetchOptions {
  method?: string;
  headers?: FieldsInit;
  body?: BytesInit;
  json?: unknown;
}
export interface Http {
  fetch(url: string, options?: FetchOptions): HttpResponse;
  getJson<T = any>(url: string, options?: { headers?: FieldsInit }): T;
  postJson<T = any>(url: string, value: unknown, options?: { headers?: FieldsInit }): T | undefined;
}

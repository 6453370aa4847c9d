// Type declarations of the SDK's testing module (src/testing.js).
import type { App, FieldsInit, BytesInit, HostInterfaces, Pairs, SqlParam } from "./index.js";
import { Response } from "./index.js";

/** The stand-ins of every trellis:plugin interface, to build an App in a test without imports. */
export const fakeInterfaces: Required<HostInterfaces>;
/** `node:sqlite` or `sql.js`. */
export const sqliteEngine: string;
/** What componentize-js throws for a WIT error variant (for a `fetch` option to fail a request). */
export function hostError(tag: string, val?: unknown): Error & { payload: { tag: string; val?: unknown } };

export interface OutgoingRequest {
  method: string;
  url: string;
  headers: Pairs;
  body: Uint8Array;
  text(): string;
  json<T = any>(): T;
}
export interface TestClientOptions {
  config?: Record<string, string | number | boolean>;
  fetch?: (req: OutgoingRequest) => { status?: number; headers?: Record<string, string>; body?: BytesInit; json?: unknown };
  maxCacheValue?: number;
  maxAttempts?: number;
}
export interface RequestOptions {
  json?: unknown;
  body?: BytesInit;
  headers?: FieldsInit;
  requestId?: string;
}
/** A response a TestClient got: a Response. */
export class TestResponse extends Response {}
export interface QueuedJob {
  id: string;
  kind: string;
  payload: Uint8Array;
  attempt: number;
  maxAttempts: number;
  idempotencyKey: string | undefined;
  queue: string;
  priority: number;
  finished: "completed" | "discarded" | undefined;
  json<T = any>(): T;
}
export interface Attempt {
  id: string;
  kind: string;
  attempt: number;
  ok: boolean;
  result?: Uint8Array;
  error?: { tag: string; val: unknown };
}
export class TestClient {
  constructor(app: App, options?: TestClientOptions);
  request(method: string, target: string, options?: RequestOptions): Promise<TestResponse>;
  get(target: string, options?: RequestOptions): Promise<TestResponse>;
  head(target: string, options?: RequestOptions): Promise<TestResponse>;
  post(target: string, options?: RequestOptions): Promise<TestResponse>;
  put(target: string, options?: RequestOptions): Promise<TestResponse>;
  patch(target: string, options?: RequestOptions): Promise<TestResponse>;
  delete(target: string, options?: RequestOptions): Promise<TestResponse>;
  query<T = Record<string, any>>(statement: string, params?: SqlParam[]): T[];
  execute(statement: string, params?: SqlParam[]): number;
  advance(ms: number): void;
  readonly logs: { level: string; message: string; fields: Record<string, string> }[];
  readonly spans: { name: string; parent?: string; attributes: Record<string, string>; events: object[]; error?: string; ended: boolean }[];
  readonly outbound: OutgoingRequest[];
  readonly invalidatedTags: string[];
  readonly cacheEntries: Map<string, { value: Uint8Array | null; tags: string[]; expiresAt: number }>;
  readonly jobs: QueuedJob[];
  runJobs(options?: { limit?: number }): Attempt[];
  tick(scheduleName: string): string;
}

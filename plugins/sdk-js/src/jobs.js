// Background jobs: declare kinds with `app.job(kind, handler, options)`,
// enqueue them with `jobs.enqueue` (the `jobs` capability) or inside a
// transaction with `jobs.enqueueIn` so the job exists only if it commits.
// Jobs run at least once: a handler must be safe to repeat.

import { HttpError, hostCall } from "./errors.js";
import { fromUtf8, toBytes, utf8 } from "./bytes.js";
import { toNumber } from "./sql.js";

/**
 * How an attempt ends other than in success: throw one from a job handler.
 * Any other HttpError thrown is `fatal` when it is a 4xx (bad input that a
 * retry cannot fix), `failed` otherwise; any other exception `failed`.
 */
export class JobError extends Error {
  constructor(tag, val, message) {
    super(message);
    this.name = "JobError";
    /** The WIT `job-error` variant the host receives. */
    this.payload = { tag, val };
  }

  /** Failed: retried after exponential backoff, discarded after the last attempt. */
  static failed(message) {
    return new JobError("failed", String(message), String(message));
  }

  /** Failed: retried no sooner than `delayMs` (an attempt spent). */
  static retryIn(delayMs, message) {
    const val = { delayMs: BigInt(Math.max(0, Math.floor(delayMs))), message: String(message) };
    return new JobError("retry-in", val, String(message));
  }

  /** Failed for good: discarded now, whatever attempts remain. */
  static fatal(message) {
    return new JobError("fatal", String(message), String(message));
  }

  /** Not failed: run again after `delayMs`, without spending an attempt. */
  static snooze(delayMs) {
    return new JobError("snooze", BigInt(Math.max(0, Math.floor(delayMs))), `snoozed for ${delayMs} ms`);
  }

  /** Any thrown value as a JobError (see the class comment). */
  static from(err) {
    if (err instanceof JobError) return err;
    if (err instanceof HttpError) {
      return err.status < 500 ? JobError.fatal(err.detail) : JobError.failed(err.detail);
    }
    return JobError.failed(err instanceof Error ? `${err.name}: ${err.message}` : String(err));
  }
}

/** One attempt at a job, from the host's `job` record. */
export class Job {
  constructor(raw) {
    /** Stable across attempts: a good key for idempotent writes. */
    this.id = raw.id;
    this.kind = raw.kind;
    /** The payload bytes. */
    this.payload = raw.payload;
    /** 1 on the first attempt. */
    this.attempt = raw.attempt;
    this.maxAttempts = raw.maxAttempts;
    this.idempotencyKey = raw.idempotencyKey;
    /** When it was enqueued, milliseconds since the epoch. */
    this.enqueuedAt = toNumber(raw.enqueuedAt);
  }

  /** The payload as text. */
  text() {
    return fromUtf8(this.payload);
  }

  /**
   * The payload as JSON; one that does not parse is a fatal JobError
   * (retrying cannot fix it).
   */
  json() {
    try {
      return JSON.parse(this.text());
    } catch (err) {
      throw JobError.fatal(`the payload is not the expected JSON: ${err.message}`);
    }
  }

  /** Whether this is the last attempt allowed. */
  get isLastAttempt() {
    return this.attempt >= this.maxAttempts;
  }
}

/**
 * A payload or a job's result as bytes: bytes or a string as they are,
 * undefined as empty, anything else as JSON.
 */
export function payloadBytes(value) {
  if (value === undefined || value === null) return new Uint8Array();
  if (typeof value === "string" || ArrayBuffer.isView(value) || value instanceof ArrayBuffer) {
    return toBytes(value);
  }
  return utf8(JSON.stringify(value));
}

/**
 * A failed enqueue, as in the Rust SDK: an unreachable queue is a 503
 * `job_queue_unavailable` with retry-after, anything else (an undeclared
 * kind, an oversized payload, a bad option) a 500 `job_invalid`. `kind` is
 * the WIT error.
 */
export class EnqueueError extends HttpError {
  constructor(kind, val) {
    const detail = {
      unavailable: `jobs: the queue does not answer: ${val}`,
      "unknown-kind": `jobs: \`${val}\` is not a kind this plugin declares`,
      "too-large": `jobs: the payload is over the limit of ${val} bytes`,
    }[kind] ?? `jobs: ${val}`;
    const unavailable = kind === "unavailable";
    super(unavailable ? 503 : 500, detail, { code: unavailable ? "job_queue_unavailable" : "job_invalid" });
    this.name = "EnqueueError";
    this.kind = kind;
    if (unavailable) this.withHeader("retry-after", "1");
  }
}

/** Runs a host call, its WIT error thrown as this capability's error. */
const call = (f) => hostCall(f, (p) => new EnqueueError(p.tag, p.val));

/** `{delayMs, priority, queue, maxAttempts, idempotencyKey}` as enqueue-options. */
function enqueueOptions({ delayMs, priority, queue, maxAttempts, idempotencyKey } = {}) {
  return {
    delayMs: delayMs === undefined ? undefined : BigInt(Math.max(0, Math.floor(delayMs))),
    priority,
    queue,
    maxAttempts,
    idempotencyKey,
  };
}

/** The enqueue helpers over the host's `trellis:plugin/jobs` interface. */
export function makeJobs(host) {
  return {
    /**
     * Enqueues a job of one of this plugin's kinds; returns its id. The
     * payload: bytes or a string as they are, anything else as JSON.
     */
    enqueue: (kind, payload, options) => call(() => host.enqueue(kind, payloadBytes(payload), enqueueOptions(options))),

    /** As enqueue, inside `tx` (an sql Transaction): the job exists only if it commits. */
    enqueueIn: (tx, kind, payload, options) =>
      call(() => host.enqueueIn(tx.raw ?? tx, kind, payloadBytes(payload), enqueueOptions(options))),
  };
}

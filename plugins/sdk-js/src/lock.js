// Leases on names shared by every node (the `lock` capability). A lease is
// not a mutex: a paused holder may outlive it, so every write it guards
// must carry its fencing token (see `sql.fencedWrite`).

import { HttpError, hostCall } from "./errors.js";
import { toNumber } from "./sql.js";
import { disposeHandle } from "./resource.js";

/**
 * A failed lock call, as in the Rust SDK: `timeout` and `unavailable` a
 * 503 with retry-after (`lock_timeout`, `lock_unavailable`), `lost` a 409
 * (`lock_lost`), `invalid` a 500 (`lock_invalid`). `kind` is the WIT error.
 */
export class LockError extends HttpError {
  constructor(kind, val) {
    const [status, code, detail] = {
      timeout: [503, "lock_timeout", "lock: not free within the wait time"],
      lost: [409, "lock_lost", "lock: the lease ran out or was taken over"],
      unavailable: [503, "lock_unavailable", `lock: the lock store does not answer: ${val}`],
      invalid: [500, "lock_invalid", `lock: invalid call: ${val}`],
    }[kind] ?? [500, "lock_invalid", `lock: ${kind}: ${val}`];
    super(status, detail, { code });
    this.name = "LockError";
    this.kind = kind;
    if (status === 503) this.withHeader("retry-after", "1");
  }
}

/** Runs a host call, its WIT error thrown as this capability's error. */
const call = (f) => hostCall(f, (p) => new LockError(p.tag, p.val));

const u32 = (ms) => Math.min(Math.max(0, Math.floor(ms)), 0xffffffff);

/** A held lock. */
export class Lease {
  constructor(raw) {
    this.raw = raw;
  }

  /** Strictly increases per lock name: attach it to guarded writes. */
  get fencingToken() {
    return toNumber(this.raw.fencingToken());
  }

  /** Milliseconds since the epoch until which the lease is safe. */
  get validUntil() {
    return toNumber(this.raw.validUntil());
  }

  /** Pushes the expiry to `ttlMs` from now; a 409 `lock_lost` if already lost. */
  extend(ttlMs) {
    call(() => this.raw.extend(u32(ttlMs)));
  }

  /** Whether the lock store still records this lease as the holder. */
  isHeld() {
    return call(() => this.raw.isHeld());
  }

  /** Releases now; a 409 `lock_lost` if the lease had already run out. */
  release() {
    try {
      call(() => this.raw.release());
    } finally {
      disposeHandle(this.raw);
    }
  }
}

/** The lock helpers over the host's `trellis:plugin/lock` interface. */
export function makeLock(host) {
  const lock = {
    /**
     * Takes lock `name` for `ttlMs` (default 10 s), waiting up to `waitMs`
     * (default 0: try once).
     */
    acquire(name, { ttlMs = 10_000, waitMs = 0 } = {}) {
      return new Lease(call(() => host.acquire(name, u32(ttlMs), u32(waitMs))));
    },

    /**
     * Runs `fn(lease)` holding lock `name` (options as `acquire`), then
     * releases it; returns what `fn` returned. The release's own outcome
     * is not reported (a lease that ran out is what fencing is for).
     */
    withLock(name, fn, options) {
      const lease = lock.acquire(name, options);
      try {
        return fn(lease);
      } finally {
        try {
          lease.release();
        } catch (err) {
          if (!(err instanceof LockError)) throw err;
        }
      }
    },
  };
  return lock;
}

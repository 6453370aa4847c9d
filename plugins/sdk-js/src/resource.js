// WIT resources (a transaction, a lease, a cache loader, a span) are
// released when their handle is dropped. componentize-js gives each handle
// a `Symbol.dispose` method (falling back to `Symbol.for("dispose")` where
// the engine lacks the symbol); the host then drops the resource at once
// instead of when the call returns.

const DISPOSE = Symbol.dispose ?? Symbol.for("dispose");

/** Drops a resource handle now, if it can be (and was not already). */
export function disposeHandle(handle) {
  const dispose = handle?.[DISPOSE];
  if (typeof dispose === "function") {
    try {
      dispose.call(handle);
    } catch {
      // Already dropped: nothing left to release.
    }
  }
}

export { DISPOSE };

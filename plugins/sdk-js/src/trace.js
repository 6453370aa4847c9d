// Spans from plugin code in the request's trace (the `trace` interface; no
// grant needed): children of the host's span of the call.

import { toPairs } from "./bytes.js";
import { disposeHandle } from "./resource.js";

/** An open span; `end` it (`trace.inSpan` does). */
export class Span {
  constructor(host, name, parent) {
    this.host = host;
    this.raw = new host.Span(name, parent?.raw);
  }

  /** Opens a span under this one. */
  child(name) {
    return new Span(this.host, name, this);
  }

  /** Sets an attribute (the last value of a key wins). */
  set(key, value) {
    this.raw.setAttribute(String(key), String(value));
    return this;
  }

  /** Records an event with attributes. */
  event(name, attributes) {
    this.raw.addEvent(String(name), toPairs(attributes));
    return this;
  }

  /** Marks the span failed. */
  error(message) {
    this.raw.setError(String(message));
    return this;
  }

  /** Ends the span now. */
  end() {
    this.raw.end();
    disposeHandle(this.raw);
  }
}

/** The trace helpers over the host's `trellis:plugin/trace` interface. */
export function makeTrace(host) {
  return {
    /** Opens a span under the call's span. */
    start: (name) => new Span(host, name),

    /**
     * Runs `fn(span)` in a span named `name` and ends it; a throw marks the
     * span failed and is rethrown.
     */
    inSpan(name, fn) {
      const span = new Span(host, name);
      try {
        return fn(span);
      } catch (err) {
        span.error(err instanceof Error ? err.message : String(err));
        throw err;
      } finally {
        span.end();
      }
    },
  };
}

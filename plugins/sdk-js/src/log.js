// Structured logging into the host's tracing (the `log` capability); the
// host attaches the plugin's name and the request id.

import { toPairs } from "./bytes.js";

/** The log helpers over the host's `trellis:plugin/log` interface. */
export function makeLog(host) {
  const emit = (level) => (message, fields) => host.log(level, String(message), toPairs(fields));
  return {
    trace: emit("trace"),
    debug: emit("debug"),
    info: emit("info"),
    warn: emit("warn"),
    error: emit("error"),
  };
}

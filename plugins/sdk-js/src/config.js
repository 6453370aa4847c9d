// The plugin's settings, as the operator set them under
// `[plugins.<name>.config]` (the `config` capability).

import { InternalError } from "./errors.js";
import { parseAs } from "./request.js";

/** The config helpers over the host's `trellis:plugin/config` interface. */
export function makeConfig(host) {
  return {
    /**
     * One setting, or undefined when unset; parsed as `type` ("int",
     * "number", "bool" or a function) when given, a value that does not
     * parse a 500 naming the key.
     */
    get(key, type = "string") {
      const value = host.get(key);
      if (value === undefined) return undefined;
      return parseAs(value, type, () => new InternalError(`plugin setting \`${key}\` has an invalid value \`${value}\``));
    },

    /** Every setting, as an object. */
    all: () => Object.fromEntries(host.getAll()),
  };
}

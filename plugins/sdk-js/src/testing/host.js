// The stand-ins for the `trellis:plugin/...` modules an app imports when it
// runs under Node: each function forwards to the fake host of the
// TestClient whose call is running (see loader.js, fakes.js).

/** What each interface exports under componentize-js (camelCase names). */
export const INTERFACE_EXPORTS = {
  sql: ["query", "queryCached", "execute", "begin", "Transaction"],
  cache: ["get", "getMany", "set", "delete", "invalidateTag", "fetch", "Loader"],
  lock: ["acquire", "Lease"],
  jobs: ["enqueue", "enqueueIn"],
  config: ["get", "getAll"],
  log: ["log"],
  trace: ["Span"],
  "outbound-http": ["fetch"],
};

let active;

/** Makes `host` the one the stand-ins forward to, until the returned function restores the previous. */
export function activate(host) {
  const previous = active;
  active = host;
  return () => {
    active = previous;
  };
}

function current(iface, name) {
  if (!active) {
    throw new Error(
      `trellis:plugin/${iface} (${name}) was called outside a TestClient call: ` +
        "send a request or run a job through a TestClient",
    );
  }
  return active.interfaces[iface];
}

/** The stand-in module of interface `iface`: an object of its exports. */
export function facade(iface) {
  const names = INTERFACE_EXPORTS[iface];
  if (!names) {
    throw new Error(`trellis:plugin/${iface} is not an interface of trellis:plugin@0.1.7`);
  }
  const module = {};
  for (const name of names) {
    if (/^[A-Z]/.test(name)) {
      // A resource: constructing it (a trace Span) makes the fake host's.
      module[name] = function Resource(...args) {
        return new (current(iface, name)[name])(...args);
      };
    } else {
      module[name] = (...args) => current(iface, name)[name](...args);
    }
  }
  return Object.freeze(module);
}

/** The stand-in of every interface, by the key an App takes (`http` is outbound-http). */
export const fakeInterfaces = {
  sql: facade("sql"),
  cache: facade("cache"),
  lock: facade("lock"),
  jobs: facade("jobs"),
  config: facade("config"),
  log: facade("log"),
  trace: facade("trace"),
  http: facade("outbound-http"),
};

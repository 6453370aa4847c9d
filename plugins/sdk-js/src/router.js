// Route patterns, parsed and matched as the host's router (matchit) does:
// `{name}` matches one non-empty segment, `{*name}` the non-empty rest of
// the path (last only); at each segment a static segment wins over
// `{name}`, which wins over `{*name}`, whatever the declaration order
// (`/users/me` beside `/users/{id}`), backtracking when a branch dead-ends.
// The app uses it to check patterns when they are declared; the testing
// module to route requests.

const STATIC = 0;
const PARAM = 1;
const REST = 2;

/**
 * A pattern's segments: `{kind, text}` (static text, or a parameter's
 * name). A malformed pattern is a TypeError naming it.
 */
export function parsePattern(pattern) {
  const bad = (why) => new TypeError(`route pattern \`${pattern}\`: ${why}`);
  if (typeof pattern !== "string" || !pattern.startsWith("/")) throw bad("must start with `/`");
  const segments = pattern.slice(1).split("/").map((text) => {
    const param = /^\{(\*?)([^{}/*]+)\}$/.exec(text);
    if (param) return { kind: param[1] ? REST : PARAM, text: param[2] };
    if (/[{}]/.test(text)) throw bad(`\`${text}\`: a parameter is a whole segment, \`{name}\` or \`{*name}\``);
    return { kind: STATIC, text };
  });
  segments.forEach((segment, i) => {
    if (segment.kind === REST && i !== segments.length - 1) throw bad("`{*name}` must be the last segment");
  });
  const names = segments.filter((s) => s.kind !== STATIC).map((s) => s.text);
  const twice = names.find((name, i) => names.indexOf(name) !== i);
  if (twice) throw bad(`parameter \`${twice}\` appears twice`);
  return segments;
}

/**
 * The raw (still percent-encoded) parameters of `path` under `segments`,
 * or undefined when it does not match.
 */
function matchSegments(segments, parts) {
  const params = [];
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i];
    if (segment.kind === REST) {
      const rest = parts.slice(i).join("/");
      if (i >= parts.length || rest === "") return undefined;
      params.push([segment.text, rest]);
      return params;
    }
    if (i >= parts.length) return undefined;
    if (segment.kind === STATIC ? parts[i] !== segment.text : parts[i] === "") return undefined;
    if (segment.kind === PARAM) params.push([segment.text, parts[i]]);
  }
  return parts.length === segments.length ? params : undefined;
}

/** Negative when `a` takes precedence over `b` (compared segment by segment). */
function precedence(a, b) {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i].kind !== b[i].kind) return a[i].kind - b[i].kind;
  }
  return a.length - b.length;
}

/**
 * Routes `method path` through `routes` (`{method, path}` in declaration
 * order): `{found: index, params}` with the raw parameters in pattern
 * order, `{allow: [methods]}` when the path matches but not the method
 * (HEAD is served by a GET route), or `{}` when no pattern matches.
 */
export function route(routes, method, path) {
  const parts = path.slice(1).split("/");
  let best;
  routes.forEach((r, index) => {
    const segments = parsePattern(r.path);
    const params = matchSegments(segments, parts);
    if (params === undefined) return;
    if (!best || precedence(segments, best.segments) < 0) best = { pattern: r.path, segments, params };
  });
  if (!best) return {};
  const candidates = routes.map((r, index) => ({ ...r, index })).filter((r) => r.path === best.pattern);
  const found =
    candidates.find((r) => r.method === method) ?? (method === "HEAD" ? candidates.find((r) => r.method === "GET") : undefined);
  if (found) return { found: found.index, params: best.params };
  const allow = candidates.map((r) => r.method);
  if (allow.includes("GET") && !allow.includes("HEAD")) allow.splice(allow.indexOf("GET") + 1, 0, "HEAD");
  return { allow };
}

#!/usr/bin/env bash
# Builds the JavaScript `hello` plugin into target/guests/js/js_hello.wasm
# with componentize-js, installed from the npm registry (package-lock.json)
# into target/js (once). Prints the component's path.
# Exit status 3, with a notice, when this machine has no Node.js and npm.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tools=$root/target/js
out=$root/target/guests/js/js_hello.wasm

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "notice: Node.js and npm are not installed; skipping the JavaScript guest" >&2
    exit 3
fi
mkdir -p "$tools" "$(dirname "$out")"
# Tests build it concurrently: one at a time.
exec 9>"$root/target/guests/js.lock"
flock 9
if ! cmp -s "$here/package-lock.json" "$tools/package-lock.json" \
    || [ ! -d "$tools/node_modules/@bytecodealliance/componentize-js" ]; then
    cp "$here/package.json" "$here/package-lock.json" "$tools/"
    (cd "$tools" && npm ci --silent --no-audit --no-fund >&2)
fi
cp "$here/componentize.mjs" "$tools/"
# Rebuild only when a source changed.
changed() {
    find "$here" "$root/wit" -name node_modules -prune -o -type f -newer "$out" -print -quit
}
if [ ! -f "$out" ] || [ -n "$(changed)" ]; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    (cd "$here" && node "$tools/componentize.mjs" app.js wit js-hello "$work/js_hello.wasm" >&2)
    mv "$work/js_hello.wasm" "$out"
fi
echo "$out"

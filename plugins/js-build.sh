#!/usr/bin/env bash
# js-build.sh DIR: builds the JavaScript plugin in DIR (its app.js, its
# world in DIR/wit named after DIR) into target/guests/js/<dir, `-` as
# `_`>.wasm with componentize-js, installed from the npm registry
# (plugins/js-tools: package.json, package-lock.json) into target/js
# (once). Prints the component's path. Each JavaScript plugin's build.sh
# calls it.
# Exit status 3, with a notice, when this machine has no Node.js and npm.
set -euo pipefail
here=$(cd "$1" && pwd)
name=$(basename "$here")
plugins=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$plugins/.." && pwd)
tools=$root/target/js
out=$root/target/guests/js/${name//-/_}.wasm

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "notice: Node.js and npm are not installed; skipping the JavaScript guest" >&2
    exit 3
fi
mkdir -p "$tools" "$(dirname "$out")"
# Tests build it concurrently: one at a time.
exec 9>"$root/target/guests/js.lock"
flock 9
if ! cmp -s "$plugins/js-tools/package-lock.json" "$tools/package-lock.json" \
    || [ ! -d "$tools/node_modules/@bytecodealliance/componentize-js" ]; then
    cp "$plugins/js-tools/package.json" "$plugins/js-tools/package-lock.json" "$tools/"
    (cd "$tools" && npm ci --silent --no-audit --no-fund >&2)
fi
cp "$plugins/js-tools/componentize.mjs" "$tools/"
# Rebuild only when a source changed.
changed() {
    find "$here" "$root/wit" "$plugins/js-tools" -name node_modules -prune -o -type f -newer "$out" -print -quit
}
if [ ! -f "$out" ] || [ -n "$(changed)" ]; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    (cd "$here" && node "$tools/componentize.mjs" app.js wit "$name" "$work/out.wasm" >&2)
    mv "$work/out.wasm" "$out"
fi
echo "$out"

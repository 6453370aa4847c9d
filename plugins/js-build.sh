#!/usr/bin/env bash
# js-build.sh DIR [FEATURE...]: builds the JavaScript plugin in DIR (its
# app.js, its world in DIR/wit named after DIR) into
# target/guests/js/<dir, `-` as `_`>.wasm with componentize-js, installed
# from the npm registry (plugins/js-tools: package.json, package-lock.json)
# into target/js (once). Each FEATURE is a StarlingMonkey feature to keep
# (see js-tools/componentize.mjs), e.g. `clocks` for Date.now(). Prints
# the component's path. Each JavaScript plugin's build.sh calls it.
#
# An app imports the SDK as `../sdk-js/src/index.js`: componentize-js
# follows relative imports only inside its working directory, so it runs
# from plugins/ (which holds both).
# Exit status 3, with a notice, when this machine has no Node.js and npm.
set -euo pipefail
here=$(cd "$1" && pwd)
shift
name=$(basename "$here")
plugins=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$plugins/.." && pwd)
out=$root/target/guests/js/${name//-/_}.wasm

# The tools, installed once; tests build concurrently: one at a time.
source "$plugins/js-tools/install.sh"
js_tools "the JavaScript guest"
mkdir -p "$(dirname "$out")"
cp "$plugins/js-tools/componentize.mjs" "$tools/"
# Rebuild only when a source changed.
changed() {
    find "$here" "$root/wit" "$plugins/js-tools" "$plugins/sdk-js/src" -name node_modules -prune -o -type f -newer "$out" -print -quit
}
if [ ! -f "$out" ] || [ -n "$(changed)" ]; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    (cd "$plugins" && node "$tools/componentize.mjs" "$name/app.js" "$name/wit" "$name" "$work/out.wasm" "$@" >&2)
    mv "$work/out.wasm" "$out"
fi
echo "$out"

#!/usr/bin/env bash
# The JavaScript SDK's tests and the JavaScript examples' unit tests, under
# `node --test`. The testing module's SQLite is node:sqlite (Node 22.5 and
# later) or sql.js, which plugins/js-tools installs into target/js (the
# same install plugins/js-build.sh makes; NODE_PATH points there).
# Exit status 3, with a notice, when this machine has no Node.js and npm.
set -euo pipefail
sdk=$(cd "$(dirname "$0")" && pwd)
plugins=$(cd "$sdk/.." && pwd)
root=$(cd "$plugins/.." && pwd)
source "$plugins/js-tools/install.sh"
js_tools "the JavaScript SDK's tests"
flock -u 9
cd "$plugins"
NODE_PATH=$tools/node_modules exec node --test sdk-js/test/*.test.js js-*/app.test.js

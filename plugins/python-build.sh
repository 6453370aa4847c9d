#!/usr/bin/env bash
# python-build.sh DIR: builds the Python plugin in DIR (its app.py, its world
# in DIR/wit named after DIR) into target/guests/python/<dir, `-` as `_`>.wasm
# with componentize-py, installed from PyPI into a virtual environment under
# target/python (made once). The app imports the Python SDK from
# plugins/sdk-python/src (`-p`). Prints the component's path. Each Python
# plugin's build.sh calls it.
# Exit status 3, with a notice, when this machine has no python3 with venv.
set -euo pipefail
here=$(cd "$1" && pwd)
name=$(basename "$here")
root=$(cd "$(dirname "$0")/.." && pwd)
componentize_py_version=0.25.1
venv=$root/target/python/venv
out=$root/target/guests/python/${name//-/_}.wasm

if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    echo "notice: python3 with venv is not installed; skipping the Python guest" >&2
    exit 3
fi
mkdir -p "$(dirname "$out")"
# Tests build it concurrently: one at a time.
exec 9>"$root/target/guests/python.lock"
flock 9
if ! "$venv/bin/componentize-py" --version 2>/dev/null | grep -q " $componentize_py_version\$"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$componentize_py_version" >&2
fi
# Rebuild only when a source changed.
changed() {
    find "$here" "$root/wit" "$root/plugins/sdk-python/src" -name __pycache__ -prune -o -type f -newer "$out" -print -quit
}
if [ ! -f "$out" ] || [ -n "$(changed)" ]; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    (cd "$here" && "$venv/bin/componentize-py" -d wit -w "$name" componentize \
        -p "$here" -p "$root/plugins/sdk-python/src" app \
        -o "$work/out.wasm" >&2)
    mv "$work/out.wasm" "$out"
fi
echo "$out"

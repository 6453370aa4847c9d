#!/usr/bin/env bash
# Builds the Python `hello` plugin into target/guests/python/python_hello.wasm
# with componentize-py, installed from PyPI into a virtual environment under
# target/python (made once). Prints the component's path.
# Exit status 3, with a notice, when this machine has no python3 with venv.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
componentize_py_version=0.25.1
venv=$root/target/python/venv
out=$root/target/guests/python/python_hello.wasm

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
    find "$here" "$root/wit" -name __pycache__ -prune -o -type f -newer "$out" -print -quit
}
if [ ! -f "$out" ] || [ -n "$(changed)" ]; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    (cd "$here" && "$venv/bin/componentize-py" -d wit -w python-hello componentize app \
        -o "$work/python_hello.wasm" >&2)
    mv "$work/python_hello.wasm" "$out"
fi
echo "$out"

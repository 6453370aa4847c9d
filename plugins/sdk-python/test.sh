#!/usr/bin/env bash
# test.sh [PROJECT...]: runs the Python SDK's tests and the Python examples'
# unit tests (plugins/python-*/test_app.py), or with arguments the
# test_app.py of each PROJECT directory (a `trellis new --lang python`
# project), under pytest, natively, in the virtual
# environment plugins/python-build.sh uses (target/python/venv; made and
# given pytest here when missing). Exit status 3, with a notice, when this
# machine has no python3 with venv.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${TRELLIS_PYTHON_VENV:-$root/target/python/venv}
pytest_version=8.3.4

if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    echo "notice: python3 with venv is not installed; skipping the Python SDK tests" >&2
    exit 3
fi
# The lock python-build.sh holds while it makes the same venv.
mkdir -p "$root/target/guests"
exec 9>"$root/target/guests/python.lock"
flock 9
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
if ! "$venv/bin/python" -m pytest --version 2>&1 | grep -q " $pytest_version\$"; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check "pytest==$pytest_version" >&2
fi
flock -u 9
export PYTHONPATH=$root/plugins/sdk-python/src
export PYTHONDONTWRITEBYTECODE=1
status=0
if [ $# -eq 0 ]; then
    "$venv/bin/python" -m pytest -q -p no:cacheprovider "$root/plugins/sdk-python/tests" || status=1
    set -- "$root"/plugins/python-*/
fi
# Each example is an `app` module of its own: one pytest run each.
for example in "$@"; do
    if [ -f "$example/test_app.py" ]; then
        (cd "$example" && "$venv/bin/python" -m pytest -q -p no:cacheprovider test_app.py) \
            || status=1
    fi
done
exit $status

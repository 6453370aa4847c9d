# Sourced by the test scripts that run a Python tool from PyPI.
#
# test_venv NAME CHECK SPEC...: sets $venv to a virtual environment of
# NAME's own under target/test-venv/ (TRELLIS_TEST_VENV overrides the
# directory), made and filled with `pip install SPEC...` unless the Python
# statement CHECK already runs there. Each tool has its own environment, so
# one tool's install never rewrites a package another tool's running
# interpreter has loaded (a shared one did: a Bus error); a lock per
# environment makes tests starting at once install it once.
# Returns 3 when it cannot (no python3, no venv module, no registry).
test_venv() {
    local name=$1 check=$2
    shift 2
    local here root
    here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    root=${TRELLIS_TEST_VENV:-$here/target/test-venv}
    venv=$root/$name
    command -v python3 >/dev/null 2>&1 || { echo "no python3" >&2; return 3; }
    mkdir -p "$root"
    exec 8>"$root/$name.lock"
    flock 8
    if ! "$venv/bin/python" -c "$check" >/dev/null 2>&1; then
        { [ -x "$venv/bin/python" ] || python3 -m venv "$venv"; } >&2 || return 3
        "$venv/bin/pip" install -q --disable-pip-version-check "$@" >&2 || return 3
    fi
    exec 8>&-
}

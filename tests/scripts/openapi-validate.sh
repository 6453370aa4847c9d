#!/usr/bin/env bash
# Validates an OpenAPI document (3.0 or 3.1) with openapi-spec-validator from
# PyPI, installed once into a virtual environment under the target directory.
# Usage: tests/scripts/openapi-validate.sh DOCUMENT.json
# Exit 0: valid; 3: no Python to run it; anything else: invalid (the reason on stderr).
set -euo pipefail
doc=$1
here=$(cd "$(dirname "$0")/../.." && pwd)
venv=${TRELLIS_TEST_VENV:-$here/target/test-venv}
command -v python3 >/dev/null 2>&1 || { echo "no python3" >&2; exit 3; }
if ! "$venv/bin/python" -c "import openapi_spec_validator" >/dev/null 2>&1; then
    python3 -m venv "$venv" >&2 || exit 3
    "$venv/bin/pip" install -q "openapi-spec-validator>=0.7" >&2 || exit 3
fi
"$venv/bin/python" - "$doc" <<'PY'
import json, sys
from openapi_spec_validator import validate
try:
    validate(json.load(open(sys.argv[1])))
except Exception as err:
    print(f"invalid: {err}", file=sys.stderr)
    sys.exit(1)
PY

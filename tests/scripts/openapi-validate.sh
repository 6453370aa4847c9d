#!/usr/bin/env bash
# Validates an OpenAPI document (3.0 or 3.1) with openapi-spec-validator from
# PyPI, installed once into its own virtual environment (tests/scripts/test-venv.sh).
# Usage: tests/scripts/openapi-validate.sh DOCUMENT.json
# Exit 0: valid; 3: no Python to run it; anything else: invalid (the reason on stderr).
set -euo pipefail
doc=$1
source "$(dirname "$0")/test-venv.sh"
test_venv openapi "import openapi_spec_validator" "openapi-spec-validator>=0.7" || exit 3
"$venv/bin/python" - "$doc" <<'PY'
import json, sys
from openapi_spec_validator import validate
try:
    validate(json.load(open(sys.argv[1])))
except Exception as err:
    print(f"invalid: {err}", file=sys.stderr)
    sys.exit(1)
PY

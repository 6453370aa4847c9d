#!/usr/bin/env bash
# Property-based API test: schemathesis (from PyPI, installed once into its
# own virtual environment, tests/scripts/test-venv.sh) generates requests
# from a running server's OpenAPI document and fails on any 5xx.
# Usage: tests/scripts/schemathesis.sh BASE_URL [EXAMPLES=20]
# Exit 0: no server error; 3: no Python to run it; anything else: a failure.
set -euo pipefail
base=$1
examples=${2:-20}
source "$(dirname "$0")/test-venv.sh"
test_venv schemathesis "import schemathesis" "schemathesis>=4,<5" || exit 3
case "$base" in
    http://127.0.0.1:*|http://localhost:*|http://\[::1\]:*) ;;
    *) echo "loopback targets only: $base" >&2; exit 1 ;;
esac
"$venv/bin/schemathesis" run "$base/api/v1/openapi.json" --url "$base" \
    --checks not_a_server_error --max-examples "$examples" --request-timeout 10 \
    --seed 20261129 >&2

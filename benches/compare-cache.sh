#!/usr/bin/env bash
# The HTTP response cache under a read-heavy load: `notes` GET by id with
# ids drawn from a Zipf distribution (s = 1) over every note, served as
# declared (the route's response cache answers repeats) and with
# `Cache-Control: no-cache` (the plugin and its query run every time),
# alternating in one run; medians, the ratio, and the cache's hit rate from
# the runtime's own counters. Embedded defaults (SQLite, in-process cache);
# `REDIS_URL=redis://127.0.0.1:6379` adds the Redis tier. Loopback only.
#
# Usage: benches/compare-cache.sh [ROUNDS=3] [DURATION=10s] [CONNECTIONS=32]
#   NOTES (default 5000) notes are created first.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
setup 32 "$@"
results="$work/results.jsonl"
notes=${NOTES:-5000}

redis_toml=""
if [ -n "${REDIS_URL:-}" ]; then
    redis_toml=$(printf '[redis]\nurl = "%s"\nnamespace = "bench-%s"\n' "$REDIS_URL" "$$")
fi
cat >"$work/trellis.toml" <<TOML
$redis_toml
[plugins.notes]
builtin = "notes"
grants = ["sql", "cache", "jobs"]
TOML
TRELLIS_CONFIG="$work/trellis.toml" TRELLIS_SERVER__LISTEN=127.0.0.1:18092 TRELLIS_LOG__LEVEL=warn \
    TRELLIS_DATA_DIR="$work/data" taskset -c 0 "$bin/trellis" serve &
trellis_pid=$!; pids+=("$trellis_pid")
wait_for http://127.0.0.1:18092/notes
python3 - "$notes" <<'PY'
import http.client, json, sys
conn = http.client.HTTPConnection("127.0.0.1", 18092)
for i in range(1, int(sys.argv[1]) + 1):
    conn.request("POST", "/notes", json.dumps({"title": f"note {i}", "body": f"body of note {i}"}),
                 {"content-type": "application/json"})
    response = conn.getresponse(); response.read()
    assert response.status == 201, response.status
PY

LOAD_ARGS="--zipf $notes" alternate_many "" /notes/ \
    "cached:18092:$trellis_pid" "no-cache:18092:$trellis_pid:cache-control: no-cache"
curl -sf http://127.0.0.1:18092/metrics >"$work/metrics.txt"

python3 benches/summary.py "$results" cached no-cache -- cached/no-cache
hit_rate "response cache" "$work/metrics.txt" \
    'trellis_http_response_cache_total\{.*route="/notes/\{id\}".*result="(\w+)".*\} (\S+)'

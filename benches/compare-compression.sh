#!/usr/bin/env bash
# Response compression on a ~20 KB JSON list (`notes` GET /notes?limit=100,
# served from the response cache, so the figures are the compression's):
# bytes on the wire and requests/s for identity, gzip, br and zstd,
# alternating in one run; medians. Loopback only.
#
# Usage: benches/compare-compression.sh [ROUNDS=3] [DURATION=10s] [CONNECTIONS=32]
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
setup 32 "$@"
results="$work/results.jsonl"

cat >"$work/trellis.toml" <<TOML
[plugins.notes]
builtin = "notes"
grants = ["sql", "cache", "jobs"]
TOML
TRELLIS_CONFIG="$work/trellis.toml" TRELLIS_SERVER__LISTEN=127.0.0.1:18093 TRELLIS_LOG__LEVEL=warn \
    TRELLIS_DATA_DIR="$work/data" taskset -c 0 "$bin/trellis" serve &
trellis_pid=$!; pids+=("$trellis_pid")
wait_for http://127.0.0.1:18093/notes
python3 - <<'PY'
import http.client, json
ops = [{"method": "POST", "path": "/notes",
        "body": {"title": f"note {i}", "body": f"body of note {i}: " + "lorem ipsum dolor sit amet " * 4}}
       for i in range(100)]
conn = http.client.HTTPConnection("127.0.0.1", 18093)
conn.request("POST", "/api/v1/batch", json.dumps({"operations": ops}))
response = conn.getresponse(); body = json.loads(response.read())
assert all(r["status"] == 201 for r in body["results"]), body
PY
url=http://127.0.0.1:18093/notes?limit=100
for encoding in identity gzip br zstd; do
    bytes=$(curl -s -o /dev/null -w '%{size_download}' -H "accept-encoding: $encoding" "$url")
    echo "{\"encoding\": \"$encoding\", \"bytes\": $bytes}" >>"$work/bytes.jsonl"
done
alternate_many "" "/notes?limit=100" "identity:18093:$trellis_pid" \
    "gzip:18093:$trellis_pid:accept-encoding: gzip" "br:18093:$trellis_pid:accept-encoding: br" \
    "zstd:18093:$trellis_pid:accept-encoding: zstd"

python3 benches/summary.py "$results" identity gzip br zstd -- gzip/identity br/identity zstd/identity
python3 - "$work/bytes.jsonl" <<'PY'
import json, sys
sizes = {r["encoding"]: r["bytes"] for r in map(json.loads, open(sys.argv[1]))}
for encoding, size in sizes.items():
    print(f"{encoding:<10} {size:>7} bytes  {size / sizes['identity']:.2f} of identity")
PY

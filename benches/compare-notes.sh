#!/usr/bin/env bash
# notes GET by id under load: the Trellis `notes` plugin against the same
# endpoint written natively (hyper + sqlx, same table, same query), on
# SQLite and on PostgreSQL, alternating, medians and ratios. Trellis runs
# twice: as served (the route's response cache answers repeats) and with
# `Cache-Control: no-cache` (the plugin and its query run every time). Servers are
# pinned to CPU 0, the load tool to CPU 1. Loopback only.
#
# Usage: benches/compare-notes.sh [ROUNDS=3] [DURATION=10s] [CONNECTIONS=32]
#   PG_URL (default postgres://postgres@127.0.0.1:5432/test) is the admin URL.
set -euo pipefail
pg_url=${PG_URL:-postgres://postgres@127.0.0.1:5432/test}
cd "$(dirname "$0")/.."
source benches/lib.sh
setup 32 "$@"
results="$work/results.jsonl"
cleanup() {
    stop_servers
    psql "$pg_url" -q -c "DROP SCHEMA IF EXISTS bench_notes CASCADE; DROP SCHEMA IF EXISTS bench CASCADE;" \
        -c "DROP OWNED BY bench_notes; DROP ROLE IF EXISTS bench_notes;" >/dev/null 2>&1 || true
}
trap cleanup EXIT


run_backend() {
    local backend=$1 config=$2 native_url=$3
    TRELLIS_CONFIG="$config" TRELLIS_SERVER__LISTEN=127.0.0.1:18090 TRELLIS_LOG__LEVEL=warn \
        TRELLIS_DATA_DIR="$work/$backend" taskset -c 0 "$bin/trellis" serve &
    local trellis_pid=$!; pids+=("$trellis_pid")
    wait_for http://127.0.0.1:18090/notes
    for i in $(seq 1 200); do
        curl -sf -X POST http://127.0.0.1:18090/notes -d "{\"title\":\"note $i\",\"body\":\"body of note $i\"}" >/dev/null
    done
    taskset -c 0 "$bin/native-notes" 127.0.0.1:18091 "${native_url}" 2>/dev/null &
    local native_pid=$!; pids+=("$native_pid")
    wait_for http://127.0.0.1:18091/notes/100
    alternate_many "$backend/" /notes/100 "trellis:18090:$trellis_pid" \
        "trellis-no-cache:18090:$trellis_pid:cache-control: no-cache" "native:18091:$native_pid"
    kill "$trellis_pid" "$native_pid"; wait "$trellis_pid" "$native_pid" 2>/dev/null || true
}

cat >"$work/sqlite.toml" <<TOML
[plugins.notes]
builtin = "notes"
grants = ["sql", "cache", "jobs"]
TOML
run_backend sqlite "$work/sqlite.toml" "sqlite:$work/sqlite/sql/notes.db"

cat >"$work/postgres.toml" <<TOML
[sql.postgres]
url = "$pg_url"
namespace = "bench"
[plugins.notes]
builtin = "notes"
grants = ["sql", "cache", "jobs"]
TOML
run_backend postgres "$work/postgres.toml" "${pg_url}?options=-csearch_path%3Dbench_notes"

python3 - "$results" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
def med(label, f):
    return statistics.median(f(r) for r in runs if r["label"] == label)
print(f"{'backend/server':<26} {'req/s':>9} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'CPU µs/req':>11} {'errors':>7}")
for backend in ("sqlite", "postgres"):
    rows = {}
    for target in ("trellis", "trellis-no-cache", "native"):
        label = f"{backend}/{target}"
        r = rows[target] = dict(
            rps=med(label, lambda r: r["rps"]),
            p50=med(label, lambda r: r["latency_ms"]["p50"]),
            p95=med(label, lambda r: r["latency_ms"]["p95"]),
            p99=med(label, lambda r: r["latency_ms"]["p99"]),
            cpu=med(label, lambda r: r["server_cpu_us_per_request"] or 0.0),
            errors=sum(x["errors"] + x["non_2xx"] for x in runs if x["label"] == label),
        )
        print(f"{label:<26} {r['rps']:>9.0f} {r['p50']:>7.2f} {r['p95']:>7.2f} {r['p99']:>7.2f} {r['cpu']:>11.1f} {r['errors']:>7}")
    print(f"{backend}: trellis (response cache)/native = {rows['trellis']['rps']/rows['native']['rps']:.2f}x req/s, "
          f"trellis (no-cache)/native = {rows['trellis-no-cache']['rps']/rows['native']['rps']:.2f}x")
PY

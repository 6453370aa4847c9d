#!/usr/bin/env bash
# The SQL query result cache under a read-heavy load: one row by id, ids
# drawn from a Zipf distribution (s = 1) over ROWS rows, read through
# `sql::query_cached` (ttl 60 s) and through `sql::query` (the statement
# runs every time), alternating in one run; medians, the ratio, and the
# query cache's hit rate from the runtime's own counters. The `misbehave`
# test plugin serves both reads (`POST /misbehave/sql-cached`, `POST
# /misbehave/sql`); its migration, from the config, makes the rows. SQLite,
# embedded defaults. Loopback only.
#
# Usage: benches/compare-query-cache.sh [ROUNDS=3] [DURATION=10s] [CONNECTIONS=32]
#   ROWS (default 5000) rows are created first.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
setup 32 "$@"
results="$work/results.jsonl"
rows=${ROWS:-5000}
component=target/guests/wasm32-wasip2/release/misbehave.wasm

cat >"$work/trellis.toml" <<TOML
[plugins.misbehave]
path = "$PWD/$component"
grants = ["config", "sql"]
[plugins.misbehave.config]
migration = "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL); INSERT INTO items (id, name) WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < $rows) SELECT x, 'item ' || x FROM s"
TOML
TRELLIS_CONFIG="$work/trellis.toml" TRELLIS_SERVER__LISTEN=127.0.0.1:18093 TRELLIS_LOG__LEVEL=warn \
    TRELLIS_DATA_DIR="$work/data" taskset -c 0 "$bin/trellis" serve &
trellis_pid=$!; pids+=("$trellis_pid")
wait_for http://127.0.0.1:18093/misbehave/ok

# One scenario per way of reading; the same statement, a literal id.
for how in cached uncached; do
    case $how in
        cached) path=/misbehave/sql-cached; extra=',"ttl_ms":60000' ;;
        uncached) path=/misbehave/sql; extra='' ;;
    esac
    cat >"$work/$how.toml" <<TOML
description = "POST $path, SELECT by id ~ Zipf(1.0) over 1..=$rows"
zipf = $rows

[[request]]
method = "POST"
path = "$path"
headers = { "content-type" = "application/json" }
body = '{"sql":"SELECT id, name FROM items WHERE id = {zipf}"$extra}'
TOML
done

for round in $(seq 1 "$rounds"); do
    for how in $([ $((round % 2)) = 1 ] && echo cached uncached || echo uncached cached); do
        taskset -c 1 "$bin/trellis-load" http://127.0.0.1:18093 --scenario "$work/$how.toml" \
            --connections "$connections" --duration "$duration" --warmup 2s \
            --server-pid "$trellis_pid" --label "$how" >>"$results"
    done
    echo "round $round done" >&2
done
curl -sf http://127.0.0.1:18093/metrics >"$work/metrics.txt"

python3 benches/summary.py ${MARKDOWN:+--markdown} "$results" cached uncached -- cached/uncached
hit_rate "query cache" "$work/metrics.txt" 'trellis_sql_query_cache\{target="(\w+)"\} (\S+)'

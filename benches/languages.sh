#!/usr/bin/env bash
# Plugins in Rust, Python and JavaScript under the same load (closed loop,
# alternating, medians): requests/s, p50/p99, server CPU per request, and
# each plugin's instance memory (the largest linear memory an instance grew
# to, from /metrics). Each language twice: a fresh instance per request
# (the default) and warm instances (`reuse = $REUSE`, default 1000).
#   1. `hello` (plugins/hello, python-hello, js-hello): GET /hello.
#   2. the notes twins (notes, python-notes, js-notes: SQLite, cache, jobs):
#      POST a new note per request (benches/scenarios/notes-write.toml,
#      under each twin's prefix), its index job running beside.
# Every server on CPU 0, the load tool on CPU 1, loopback only. The Python
# and JavaScript guests are built by their plugins' build.sh (PyPI, npm).
#
# Usage: benches/languages.sh [ROUNDS=3] [DURATION=10s] [CONNECTIONS=32]
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
python=$(bash plugins/python-hello/build.sh)
js=$(bash plugins/js-hello/build.sh)
python_notes=$(bash plugins/python-notes/build.sh)
js_notes=$(bash plugins/js-notes/build.sh)
reuse=${REUSE:-1000}
setup 32 "$@"
results="$work/results.jsonl"
notes_results="$work/notes.jsonl"

# start LABEL PORT PLUGIN SOURCE GRANTS [EXTRA]: one server process serving
# one plugin (the twins claim the same routes), pid in ${LABEL}_pid.
start() {
    local label=$1 port=$2 plugin=$3 source=$4 grants=$5 extra=${6:-}
    printf '[plugins.%s]\n%s\ngrants = %s\n%s\n[plugins.%s.limits]\nmax_concurrency = 200\n' \
        "$plugin" "$source" "$grants" "$extra" "$plugin" >"$work/$label.toml"
    TRELLIS_CONFIG="$work/$label.toml" TRELLIS_SERVER__LISTEN=127.0.0.1:$port TRELLIS_LOG__LEVEL=warn \
        TRELLIS_DATA_DIR="$work/data-$label" taskset -c 0 "$bin/trellis" serve &
    pids+=($!)
    eval "${label//-/_}_pid=$!"
}
port=18100
hello_targets=()
notes_targets=()
for warm in "" "-warm"; do
    extra=""
    [ -n "$warm" ] && extra="reuse = $reuse"
    for entry in "rust:hello:builtin = \"hello\"" "python:python-hello:path = \"$python\"" \
        "javascript:js-hello:path = \"$js\""; do
        IFS=: read -r lang plugin source <<<"$entry"
        start "$lang$warm" $port "$plugin" "$source" '["config"]' "$extra"
        wait_for http://127.0.0.1:$port/hello 300
        pid_var="${lang}${warm//-/_}_pid"
        hello_targets+=("$lang$warm:$port:${!pid_var}")
        port=$((port + 1))
    done
    for entry in "rust:notes:/notes:builtin = \"notes\"" \
        "python:python-notes:/python-notes:path = \"$python_notes\"" \
        "javascript:js-notes:/js-notes:path = \"$js_notes\""; do
        IFS=: read -r lang plugin prefix source <<<"$entry"
        label="notes-$lang$warm"
        start "$label" $port "$plugin" "$source" '["sql", "cache", "jobs"]' "$extra"
        # The first start compiles the 12-18 MB components (then the compile cache).
        wait_for "http://127.0.0.1:$port$prefix" 300
        sed "s|/notes|$prefix|" benches/scenarios/notes-write.toml >"$work/$label.scenario.toml"
        pid_var="${label//-/_}_pid"
        notes_targets+=("$label:$port:${!pid_var}")
        port=$((port + 1))
    done
done

alternate_many "" /hello "${hello_targets[@]}"
echo "== hello, $connections connections, $duration, medians of $rounds"
python3 benches/summary.py ${MARKDOWN:+--markdown} "$results" \
    rust python javascript rust-warm python-warm javascript-warm -- \
    python/rust javascript/rust rust-warm/rust python-warm/python javascript-warm/javascript

# The notes twins: each target its own scenario (its own prefix), rotated
# like alternate_many's rounds.
n=${#notes_targets[@]}
for round in $(seq 1 "$rounds"); do
    for i in $(seq 0 $((n - 1))); do
        IFS=: read -r label port pid <<<"${notes_targets[$(((round - 1 + i) % n))]}"
        taskset -c 1 "$bin/trellis-load" "http://127.0.0.1:$port" \
            --scenario "$work/$label.scenario.toml" \
            --connections "$connections" --duration "$duration" --warmup 2s \
            --server-pid "$pid" --label "$label" >>"$notes_results"
    done
    echo "notes round $round done" >&2
done
echo "== notes twins, POST a note, $connections connections, $duration, medians of $rounds"
python3 benches/summary.py ${MARKDOWN:+--markdown} "$notes_results" \
    notes-rust notes-python notes-javascript notes-rust-warm notes-python-warm notes-javascript-warm -- \
    notes-python/notes-rust notes-javascript/notes-rust notes-rust-warm/notes-rust \
    notes-python-warm/notes-python notes-javascript-warm/notes-javascript

echo
echo "instance memory (largest linear memory of an instance), component size:"
for entry in "rust:hello:18100:target/guests/wasm32-wasip2/release/hello.wasm" \
    "python:python-hello:18101:$python" "javascript:js-hello:18102:$js"; do
    IFS=: read -r name plugin port file <<<"$entry"
    bytes=$(curl -sf "http://127.0.0.1:$port/metrics" \
        | awk -v p="plugin=\"$plugin\"" '/^(trellis_)?plugin_memory_high_water_bytes/ && index($0, p) {print $2}')
    printf '  %-10s %8.1f MiB   %8.1f MiB\n' "$name" "$(python3 -c "print(${bytes:-0} / 1048576)")" \
        "$(python3 -c "print($(stat -c %s "$file") / 1048576)")"
done

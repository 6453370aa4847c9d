#!/usr/bin/env bash
# `hello` in Rust, Python and JavaScript, in one Trellis process, under the
# same load (closed loop, alternating, medians): requests/s, p50/p99, server
# CPU per request, and each plugin's instance memory (the largest linear
# memory an instance grew to, from /metrics). Server on CPU 0, load on
# CPU 1, loopback only. Python and JavaScript guests are built by their
# plugins' build.sh (PyPI, npm).
#
# Usage: benches/languages.sh [ROUNDS=3] [DURATION=10s] [CONNECTIONS=32]
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
python=$(bash plugins/python-hello/build.sh)
js=$(bash plugins/js-hello/build.sh)
setup 32 "$@"
results="$work/results.jsonl"

# Each language in its own server process (all three claim /hello); only
# one is loaded at a time, the others idle.
start() {
    local name=$1 port=$2 source=$3
    printf '[plugins.%s]\n%s\ngrants = ["config"]\n[plugins.%s.limits]\nmax_concurrency = 200\n' \
        "$name" "$source" "$name" >"$work/$name.toml"
    TRELLIS_CONFIG="$work/$name.toml" TRELLIS_SERVER__LISTEN=127.0.0.1:$port TRELLIS_LOG__LEVEL=warn \
        TRELLIS_DATA_DIR="$work/data-$name" taskset -c 0 "$bin/trellis" serve &
    pids+=($!)
    eval "${name}_pid=$!"
}
start rust 18100 'builtin = "hello"'
start python 18101 "path = \"$python\""
start javascript 18102 "path = \"$js\""
wait_for http://127.0.0.1:18100/hello
# The first start compiles 18 and 12 MB components (then the compile cache).
wait_for http://127.0.0.1:18101/hello 300
wait_for http://127.0.0.1:18102/hello 300
alternate_many "" /hello "rust:18100:$rust_pid" "python:18101:$python_pid" \
    "javascript:18102:$javascript_pid"
python3 benches/summary.py ${MARKDOWN:+--markdown} "$results" rust python javascript -- \
    python/rust javascript/rust
echo
echo "instance memory (largest linear memory of an instance), component size:"
for entry in rust:18100:target/guests/wasm32-wasip2/release/hello.wasm \
    "python:18101:$python" "javascript:18102:$js"; do
    IFS=: read -r name port file <<<"$entry"
    bytes=$(curl -sf "http://127.0.0.1:$port/metrics" \
        | awk -v p="plugin=\"$name\"" '/^(trellis_)?plugin_memory_high_water_bytes/ && index($0, p) {print $2}')
    printf '  %-10s %8.1f MiB   %8.1f MiB\n' "$name" "$(python3 -c "print(${bytes:-0} / 1048576)")" \
        "$(python3 -c "print($(stat -c %s "$file") / 1048576)")"
done

#!/usr/bin/env bash
# What observability costs on `hello`: Trellis with metrics and the local
# trace store (the default: no export), the same with OTLP export at the
# default sampling ratio (0.1) to a sink — spans, and metrics every second
# (the shortest interval allowed) — and the native hyper baseline;
# alternating, several rounds, medians and ratios. Servers on CPU 0; the
# load tool and the sink on CPU 1.
#
# Usage: benches/compare-telemetry.sh [ROUNDS=3] [DURATION=10s] [CONNECTIONS=64]
# EXPORT_RATIO=1 exports every trace (default: the default ratio, 0.1);
# METRICS_INTERVAL=30s posts metrics at the default pace instead.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
setup 64 "$@"
# The sink goes last, so the exporting server can flush into it.
cleanup() {
    stop_servers
    kill "$sink_pid" 2>/dev/null || true
}
trap cleanup EXIT

taskset -c 1 "$bin/otlp-sink" 127.0.0.1:18318 2>/dev/null &
sink_pid=$!
TRELLIS_SERVER__LISTEN=127.0.0.1:18080 TRELLIS_LOG__LEVEL=warn TRELLIS_DATA_DIR="$work/a" \
    taskset -c 0 "$bin/trellis" serve &
pids+=($!); plain_pid=$!
TRELLIS_SERVER__LISTEN=127.0.0.1:18082 TRELLIS_LOG__LEVEL=warn TRELLIS_DATA_DIR="$work/b" \
    TRELLIS_TELEMETRY__OTLP_ENDPOINT='"http://127.0.0.1:18318"' \
    TRELLIS_TELEMETRY__SAMPLING_RATIO="${EXPORT_RATIO:-0.1}" \
    TRELLIS_TELEMETRY__METRICS_INTERVAL="\"${METRICS_INTERVAL:-1s}\"" \
    taskset -c 0 "$bin/trellis" serve &
pids+=($!); export_pid=$!
taskset -c 0 "$bin/native-hello" 127.0.0.1:18081 2>/dev/null &
pids+=($!); native_pid=$!

for port in 18080 18082 18081; do wait_for "http://127.0.0.1:$port/hello"; done

results="$work/results.jsonl"
alternate_many "" /hello "trellis:18080:$plain_pid" "export:18082:$export_pid" \
    "native:18081:$native_pid"

python3 benches/summary.py "$results" trellis export native -- export/trellis trellis/native

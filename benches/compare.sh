#!/usr/bin/env bash
# Head-to-head load run on loopback: the Trellis `hello` plugin against a
# native hyper hello-world server, alternating targets, several rounds,
# medians and ratios. Servers are pinned to CPU 0, the load tool to CPU 1.
#
# Usage: benches/compare.sh [ROUNDS=3] [DURATION=10s] [CONNECTIONS=64]
set -euo pipefail
rounds=${1:-3}
duration=${2:-10s}
connections=${3:-64}
cd "$(dirname "$0")/.."
source benches/lib.sh

# A backtrace captured per wasmtime error value costs 10-20 % (PERF_NOTES.md).
unset RUST_BACKTRACE
cargo build --release -q -p trellis -p trellis-benches --bins
bin=target/release
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT

TRELLIS_SERVER__LISTEN=127.0.0.1:18080 TRELLIS_LOG__LEVEL=warn TRELLIS_DATA_DIR="$work" \
    taskset -c 0 "$bin/trellis" serve &
pids+=($!); trellis_pid=$!
taskset -c 0 "$bin/native-hello" 127.0.0.1:18081 2>/dev/null &
pids+=($!); native_pid=$!

wait_for http://127.0.0.1:18080/hello
wait_for http://127.0.0.1:18081/hello

results="$work/results.jsonl"
alternate "" /hello 18080 "$trellis_pid" 18081 "$native_pid"

python3 - "$results" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
def med(label, f):
    return statistics.median(f(r) for r in runs if r["label"] == label)
rows = {}
for label in ("trellis", "native"):
    rows[label] = dict(
        rps=med(label, lambda r: r["rps"]),
        p50=med(label, lambda r: r["latency_ms"]["p50"]),
        p99=med(label, lambda r: r["latency_ms"]["p99"]),
        cpu=med(label, lambda r: r["server_cpu_us_per_request"] or 0.0),
        errors=sum(r["errors"] + r["non_2xx"] for r in runs if r["label"] == label),
    )
print(f"{'server':<8} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'CPU µs/req':>11} {'errors':>7}")
for label, r in rows.items():
    print(f"{label:<8} {r['rps']:>10.0f} {r['p50']:>8.2f} {r['p99']:>8.2f} {r['cpu']:>11.1f} {r['errors']:>7}")
t, n = rows["trellis"], rows["native"]
print(f"trellis/native: {t['rps']/n['rps']:.2f}x req/s, {t['cpu']/max(n['cpu'],1e-9):.1f}x CPU per request")
PY

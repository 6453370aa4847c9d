#!/usr/bin/env bash
# What the kernel does for a request, Trellis against `wasmtime serve` on the
# same `wasi-hello` component (and Trellis' own-world `hello`), nothing
# pinned, loaded by wrk (one thread, 64 connections):
#   1. `perf stat` of each server over DURATION per round, rounds
#      alternating: context switches, CPU migrations, page faults and CPU
#      time per request, and requests per second;
#   2. `strace -c -f` of each server over one more DURATION at 16
#      connections: system calls per request, by name (strace slows the
#      server many times over: read the counts, not the rates).
# docs/performance.md reads these. perf's hardware counters are not
# available in this kind of VM; the software ones are.
#
# Usage: benches/kernel.sh [ROUNDS=2] [DURATION=6s]
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
wasmtime=$(benches/install-wasmtime.sh)
setup 64 "${1:-2}" "${2:-6s}" 64
need_wrk
for tool in perf strace; do
    command -v "$tool" >/dev/null || {
        echo "$tool is needed (Debian's package)" >&2
        exit 1
    }
done
hello_and_wasi_toml >"$work/trellis.toml"
start_trellis 18180 ""
start_wasmtime 18182 "" target/guests/wasm32-wasip2/release/wasi_hello.wasm
wait_for http://127.0.0.1:18180/wasi 60
wait_for http://127.0.0.1:18182/ 60
targets=("trellis-wasi:$trellis_pid:18180/wasi" "wasmtime-serve:$wasmtime_pid:18182/"
    "trellis-hello:$trellis_pid:18180/hello")
seconds=${duration%s}

# requests WRK_OUTPUT: the request count wrk reports.
requests() { awk '/requests in/ { print $1 }' "$1"; }

echo "== perf stat, unpinned, wrk -t1 -c64, $duration, $rounds rounds"
for round in $(seq 1 "$rounds"); do
    for target in "${targets[@]}"; do
        IFS=: read -r label pid url <<<"$target"
        wrk -t1 -c64 -d2s "http://127.0.0.1:$url" >/dev/null
        perf stat -x, -e context-switches,cpu-migrations,page-faults,task-clock -p "$pid" \
            -o "$work/perf" -- sleep "$seconds" &
        wrk -t1 -c64 -d"$duration" "http://127.0.0.1:$url" >"$work/wrk"
        wait $!
        python3 - "$label" "$(requests "$work/wrk")" "$seconds" "$work/perf" <<'PY'
import sys
label, requests, seconds, path = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
counts = {}
for line in open(path):
    fields = line.strip().split(",")
    if len(fields) > 2 and fields[0] and fields[0][0].isdigit():
        counts[fields[2]] = float(fields[0])
n = max(requests, 1)
print(f"{label:15} {requests / seconds:9.0f} req/s  {counts['context-switches'] / n:.3f} cs"
      f"  {counts['cpu-migrations'] / n:.4f} migrations  {counts['page-faults'] / n:.3f} faults"
      f"  {counts['task-clock'] * 1000 / n:.1f} µs CPU  per request")
PY
    done
done

echo "== strace -c -f, wrk -t1 -c16, $duration: system calls per request"
for target in "${targets[@]:0:2}"; do
    IFS=: read -r label pid url <<<"$target"
    strace -c -f -p "$pid" -o "$work/strace" &
    tracer=$!
    sleep 1
    wrk -t1 -c16 -d"$duration" "http://127.0.0.1:$url" >"$work/wrk"
    kill -INT "$tracer"
    wait "$tracer" || true
    python3 - "$label" "$(requests "$work/wrk")" "$work/strace" <<'PY'
import sys
label, requests, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
calls = []
for line in open(path):
    fields = line.split()
    if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] != "total":
        calls.append((int(fields[3]), fields[-1]))
calls.sort(reverse=True)
print(f"{label:15} " + ", ".join(f"{name} {count / max(requests, 1):.2f}"
                                  for count, name in calls if count / max(requests, 1) >= 0.01))
PY
done

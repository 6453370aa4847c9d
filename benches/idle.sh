#!/usr/bin/env bash
# What a node costs when there is little or nothing to do, beside native
# hyper measured the same way in the same run:
#   idle        CPU of the server process over IDLE seconds with no request,
#               as % of one core (from /proc/<pid>/stat: user + system)
#   1,000 rps   server CPU per request at a constant 1,000 req/s (open loop)
#   saturated   server CPU per request under closed-loop load
# and the ratio of the two per-request figures (goal: within 3× for
# Trellis); then, for Trellis, where the CPU goes by thread (at rest, per
# second; at 1,000 req/s, per request) with each thread's sleeps (voluntary
# context switches), from /proc/<pid>/task/*/schedstat and status. Both
# servers on CPU 0, the load tool on CPU 1; the CPU figures are the
# server's own time, so other work on CPU 1 does not count.
#
# TRELLIS_BIN picks another Trellis binary (an earlier build, for an A/B).
#
# Usage: benches/idle.sh [ROUNDS=3] [DURATION=10s] [IDLE=30]
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
setup 32 "${1:-3}" "${2:-10s}" 32
idle_seconds=${3:-30}
results="$work/results.jsonl"

TRELLIS_SERVER__LISTEN=127.0.0.1:18090 TRELLIS_LOG__LEVEL=warn TRELLIS_DATA_DIR="$work/data" \
    taskset -c 0 "${TRELLIS_BIN:-$bin/trellis}" serve &
pids+=($!); trellis_pid=$!
start_native 18091 0
wait_for http://127.0.0.1:18090/hello
wait_for http://127.0.0.1:18091/hello
# Past start-up work (migrations, the first compile), then measure.
curl -sf http://127.0.0.1:18090/hello >/dev/null
sleep 5

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# thread_snapshot PID: a line per thread: tid, name, ns on CPU, sleeps.
thread_snapshot() {
    local task
    for task in /proc/"$1"/task/*; do
        echo "${task##*/} $(tr ' ' _ <"$task/comm") $(cut -d' ' -f1 "$task/schedstat")" \
            "$(awk '/^voluntary_ctxt_switches/ { print $2 }' "$task/status")"
    done
}
# by_thread BEFORE AFTER COUNT UNIT: the difference of two snapshots by
# thread name, divided by COUNT (seconds or requests).
by_thread() {
    python3 - "$@" <<'PY'
import collections, sys
before, after, count, unit = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
old = {line.split()[0]: line.split() for line in before.splitlines()}
spent = collections.defaultdict(lambda: [0, 0])
for line in after.splitlines():
    tid, name, ns, sleeps = line.split()
    was = old.get(tid, [tid, name, 0, 0])
    spent[name][0] += int(ns) - int(was[2])
    spent[name][1] += int(sleeps) - int(was[3])
for name, (ns, sleeps) in sorted(spent.items(), key=lambda kv: -kv[1][0]):
    if ns > 0:
        print(f"  {name:18s} {ns / count / 1000:8.1f} µs/{unit}  {sleeps / count:7.3f} sleeps/{unit}")
PY
}
hz=$(getconf CLK_TCK)
declare -A idle_before
threads_before=$(thread_snapshot "$trellis_pid")
for label_pid in "trellis:$trellis_pid" "native:$native_pid"; do
    idle_before[$label_pid]=$(cpu_ticks "${label_pid#*:}")
done
sleep "$idle_seconds"
echo "== idle for ${idle_seconds}s (% of one core)"
for label_pid in "trellis:$trellis_pid" "native:$native_pid"; do
    used=$(($(cpu_ticks "${label_pid#*:}") - ${idle_before[$label_pid]}))
    python3 -c "print(f'${label_pid%%:*}: {100 * $used / $hz / $idle_seconds:.2f} %')"
done
echo "trellis at rest, by thread:"
by_thread "$threads_before" "$(thread_snapshot "$trellis_pid")" "$idle_seconds" s

# Open loop at 1,000 req/s (16 connections), then closed loop, each over
# $rounds alternating rounds.
targets=("trellis:18090:$trellis_pid" "native:18091:$native_pid")
LOAD_ARGS="--rate 1000" connections=16 alternate_many rate- /hello "${targets[@]}"
alternate_many saturated- /hello "${targets[@]}"
echo "== /hello at 1,000 req/s and saturated ($connections connections), medians of $rounds"
python3 benches/summary.py ${MARKDOWN:+--markdown} "$results" \
    rate-trellis saturated-trellis rate-native saturated-native -- \
    rate-trellis/saturated-trellis rate-native/saturated-native rate-trellis/rate-native

# One more run at 1,000 req/s, Trellis alone, by thread.
load_pin
threads_before=$(thread_snapshot "$trellis_pid")
"${pin[@]}" "$bin/trellis-load" http://127.0.0.1:18090/hello --connections 16 \
    --duration "$duration" --warmup 0s --rate 1000 --label by-thread >"$work/by-thread.json"
requests=$(python3 -c "import json, sys; print(json.load(open(sys.argv[1]))['requests'])" "$work/by-thread.json")
echo "== trellis at 1,000 req/s, by thread ($requests requests)"
by_thread "$threads_before" "$(thread_snapshot "$trellis_pid")" "$requests" req

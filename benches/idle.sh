#!/usr/bin/env bash
# What a node costs when there is little or nothing to do, beside native
# hyper measured the same way in the same run:
#   idle        CPU of the server process over IDLE seconds with no request,
#               as % of one core (from /proc/<pid>/stat: user + system)
#   1,000 rps   server CPU per request at a constant 1,000 req/s (open loop)
#   saturated   server CPU per request under closed-loop load
# and the ratio of the two per-request figures (goal: within 3× for
# Trellis). Both servers on CPU 0, the load tool on CPU 1; the CPU figures
# are the server's own time, so other work on CPU 1 does not count.
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
hz=$(getconf CLK_TCK)
declare -A idle_before
for label_pid in "trellis:$trellis_pid" "native:$native_pid"; do
    idle_before[$label_pid]=$(cpu_ticks "${label_pid#*:}")
done
sleep "$idle_seconds"
echo "== idle for ${idle_seconds}s (% of one core)"
for label_pid in "trellis:$trellis_pid" "native:$native_pid"; do
    used=$(($(cpu_ticks "${label_pid#*:}") - ${idle_before[$label_pid]}))
    python3 -c "print(f'${label_pid%%:*}: {100 * $used / $hz / $idle_seconds:.2f} %')"
done

# Open loop at 1,000 req/s (16 connections), then closed loop, each over
# $rounds alternating rounds.
targets=("trellis:18090:$trellis_pid" "native:18091:$native_pid")
LOAD_ARGS="--rate 1000" connections=16 alternate_many rate- /hello "${targets[@]}"
alternate_many saturated- /hello "${targets[@]}"
echo "== /hello at 1,000 req/s and saturated ($connections connections), medians of $rounds"
python3 benches/summary.py ${MARKDOWN:+--markdown} "$results" \
    rate-trellis saturated-trellis rate-native saturated-native -- \
    rate-trellis/saturated-trellis rate-native/saturated-native rate-trellis/rate-native

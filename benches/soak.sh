#!/usr/bin/env bash
# Soak: the `mixed` scenario (80 % skewed reads, 20 % creates) at 70 % of
# the capacity measured first, for 10 minutes by default, against a release
# build serving the examples on SQLite. Samples the server's RSS and open
# file descriptors every 10 s and fails on any error or if RSS grew by more
# than 20 % (or 64 MiB) between the first and the last minute.
# Server on CPU 0, load on CPU 1. Loopback only. Not part of CI.
#
# Usage: benches/soak.sh [DURATION=600s] [CONNECTIONS=32]
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
soak=${1:-600s}
setup 32 1 "$soak" "${2:-32}"

TRELLIS_SERVER__LISTEN=127.0.0.1:18080 TRELLIS_LOG__LEVEL=warn TRELLIS_DATA_DIR="$work/data" \
    taskset -c 0 "$bin/trellis" serve &
pids+=($!); server=$!
wait_for http://127.0.0.1:18080/hello

echo "== capacity: mixed, closed loop, $connections connections, 15 s" >&2
capacity=$(taskset -c 1 "$bin/trellis-load" http://127.0.0.1:18080 \
    --scenario benches/scenarios/mixed.toml --connections "$connections" \
    --duration 15s --warmup 3s | python3 -c 'import json,sys; print(json.load(sys.stdin)["rps"])')
rate=$(python3 -c "print(round($capacity * 0.7))")
echo "capacity ≈ $capacity req/s; soaking at $rate req/s for $soak" >&2

samples="$work/samples.tsv"
(
    while kill -0 "$server" 2>/dev/null; do
        rss=$(awk '/VmRSS/ {print $2}' "/proc/$server/status")
        fds=$(ls "/proc/$server/fd" | wc -l)
        printf '%s\t%s\t%s\n' "$(date +%s)" "$rss" "$fds" >>"$samples"
        sleep 10
    done
) &
sampler=$!
taskset -c 1 "$bin/trellis-load" http://127.0.0.1:18080 --scenario benches/scenarios/mixed.toml \
    --rate "$rate" --connections "$connections" --duration "$soak" --warmup 5s \
    --server-pid "$server" --label soak >"$work/soak.json"
kill "$sampler" 2>/dev/null || true

python3 - "$work/soak.json" "$samples" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
rows = [tuple(map(int, line.split("\t"))) for line in open(sys.argv[2]) if line.strip()]
start = rows[0][0]
print(f"{'t s':>6} {'RSS MiB':>8} {'fds':>5}")
for t, rss, fds in rows:
    print(f"{t - start:>6} {rss / 1024:>8.1f} {fds:>5}")
first = [r for r in rows if r[0] - start <= 60]
last = [r for r in rows if r[0] - rows[-1][0] >= -60]
rss_first = max(r[1] for r in first)
rss_last = max(r[1] for r in last)
fds_first = max(r[2] for r in first)
fds_last = max(r[2] for r in last)
lat = report["latency_ms"]
print(f"\n{report['requests']} requests at {report['rps']:.0f} req/s, p50 {lat['p50']:.2f} ms, "
      f"p99 {lat['p99']:.2f} ms, errors {report['errors']}, non-2xx {report['non_2xx']} "
      f"{report['errors_by_kind']}")
print(f"RSS first minute {rss_first / 1024:.1f} MiB, last minute {rss_last / 1024:.1f} MiB; "
      f"fds {fds_first} → {fds_last}")
ok = (report["errors"] + report["non_2xx"] == 0
      and rss_last <= max(rss_first * 1.2, rss_first + 64 * 1024)
      and fds_last <= fds_first + 16)
print("soak: OK" if ok else "soak: FAILED")
sys.exit(0 if ok else 1)
PY

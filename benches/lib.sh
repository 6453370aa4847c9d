# Shared by the compare scripts: arguments, building, waiting for a server,
# and alternating load rounds (which append to $results).

# setup DEFAULT_CONNECTIONS [ROUNDS=3] [DURATION=10s] [CONNECTIONS]: sets
# $rounds, $duration, $connections, builds the release binaries, sets $bin
# and $work; the pids added to $pids are stopped on exit.
setup() {
    rounds=${2:-3}
    duration=${3:-10s}
    connections=${4:-$1}
    # A backtrace captured per wasmtime error value costs 10-20 % (docs/performance.md).
    unset RUST_BACKTRACE
    cargo build --release -q -p trellis -p trellis-benches --bins
    bin=target/release
    work=$(mktemp -d)
    pids=()
    trap stop_servers EXIT
}

# The `wasmtime serve` options the head-to-heads run it with: its best
# per-request-isolated settings (pooling allocator, the slot reset tuned;
# docs/performance.md).
wasmtime_serve_options=(-O pooling-allocator=y -O pooling-pagemap-scan=y
    -O pooling-memory-keep-resident=2097152 -O pooling-table-keep-resident=65536
    -O pooling-async-stack-keep-resident=1048576)

# hello_and_wasi_toml: the config tables of our own-world `hello` and the
# `wasi-hello` component mounted at /wasi, as the head-to-heads serve them.
hello_and_wasi_toml() {
    cat <<TOML
[plugins.hello]
builtin = "hello"
grants = ["log", "config"]
[plugins.wasi]
path = "$PWD/target/guests/wasm32-wasip2/release/wasi_hello.wasm"
grants = []
mount = "/wasi"
TOML
}

# proxy_toml UPSTREAM: the config table of the `proxy` example fetching
# from UPSTREAM (pooled), as the outbound benchmarks serve it.
proxy_toml() {
    cat <<TOML
[plugins.proxy]
path = "$PWD/target/guests/wasm32-wasip2/release/proxy.wasm"
grants = ["config", "outbound-http"]
allowed_outbound_hosts = ["$1"]
[plugins.proxy.config]
upstream = "$1"
TOML
}

# by_layout RUN: runs `RUN NAME SERVER_CPUS LOAD_CPUS` for the layouts
# $LAYOUT names: pinned (`pinned 0 1`: the servers on CPU 0, the load tool
# on CPU 1), unpinned (`unpinned "" ""`: nothing pinned) or both (the
# default), in that order.
by_layout() {
    case ${LAYOUT:-both} in
        pinned) "$1" pinned 0 1 ;;
        unpinned) "$1" unpinned "" "" ;;
        both)
            "$1" pinned 0 1
            "$1" unpinned "" ""
            ;;
        *) echo "LAYOUT is pinned, unpinned or both" >&2; exit 2 ;;
    esac
}

# start_trellis PORT CPUS: $bin/trellis serving $work/trellis.toml on
# 127.0.0.1:PORT (data in $work/data), pinned to CPUS unless it is empty;
# its pid is added to $pids and kept in $trellis_pid.
start_trellis() {
    local pin=()
    [ -n "$2" ] && pin=(taskset -c "$2")
    TRELLIS_CONFIG="$work/trellis.toml" TRELLIS_SERVER__LISTEN=127.0.0.1:$1 \
        TRELLIS_LOG__LEVEL=warn TRELLIS_DATA_DIR="$work/data" "${pin[@]}" "$bin/trellis" serve &
    pids+=($!)
    trellis_pid=$!
}

# start_native PORT CPUS: the native hyper hello server on 127.0.0.1:PORT,
# pinned to CPUS unless it is empty; its pid in $pids and $native_pid.
start_native() {
    local pin=()
    [ -n "$2" ] && pin=(taskset -c "$2")
    "${pin[@]}" "$bin/native-hello" "127.0.0.1:$1" 2>/dev/null &
    pids+=($!)
    native_pid=$!
}

# start_wasmtime PORT CPUS COMPONENT [OPTION...]: `wasmtime serve` (from
# $wasmtime) with -S cli, the head-to-heads' options and OPTIONs, serving
# COMPONENT on 127.0.0.1:PORT, pinned to CPUS unless it is empty; its log in
# $work/wasmtime.log, its pid in $pids and $wasmtime_pid.
start_wasmtime() {
    local port=$1 cpus=$2 component=$3 pin=()
    shift 3
    [ -n "$cpus" ] && pin=(taskset -c "$cpus")
    "${pin[@]}" "$wasmtime" serve --addr "127.0.0.1:$port" -S cli=y "$@" \
        "${wasmtime_serve_options[@]}" "$component" 2>"$work/wasmtime.log" &
    pids+=($!)
    wasmtime_pid=$!
}

stop_servers() {
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
}

# wait_for URL [SECONDS=20]: waits until URL answers 2xx.
wait_for() {
    for _ in $(seq 1 $((${2:-20} * 10))); do curl -sf "$1" >/dev/null && return; sleep 0.1; done
    echo "no answer from $1" >&2
    exit 1
}

# load_pin: sets the array `pin` to the command prefix that runs the load
# tool on CPU 1, or where $LOAD_CPUS says (empty: unpinned).
load_pin() {
    pin=()
    if [ -n "${LOAD_CPUS-1}" ]; then pin=(taskset -c "${LOAD_CPUS-1}"); fi
}

# alternate LABEL_PREFIX PATH TRELLIS_PORT TRELLIS_PID NATIVE_PORT NATIVE_PID:
# Trellis against native (see alternate_many).
alternate() {
    alternate_many "$1" "$2" "trellis:$3:$4" "native:$5:$6"
}

# alternate_many LABEL_PREFIX PATH LABEL:PORT:PID[:HEADER]...: $rounds rounds, each
# loading every target in turn with the load tool pinned to CPU 1 (or to
# $LOAD_CPUS; set it empty for no pinning),
# appending one JSON line per run to $results. $LOAD_ARGS, when set, is
# passed to every run (e.g. `--zipf 5000`). Each round starts one target
# later than the one before, so no target always runs first or last.
alternate_many() {
    local prefix=$1 path=$2
    shift 2
    local targets=("$@") n=$#
    local pin
    load_pin
    for round in $(seq 1 "$rounds"); do
        for i in $(seq 0 $((n - 1))); do
            target=${targets[$(((round - 1 + i) % n))]}
            # An optional fourth field is a request header (`name: value`).
            IFS=: read -r label port pid header <<<"$target"
            "${pin[@]}" "$bin/trellis-load" "http://127.0.0.1:$port$path" \
                --connections "$connections" --duration "$duration" --warmup 2s \
                ${header:+--header "$header"} ${LOAD_ARGS:-} \
                --server-pid "$pid" --label "$prefix$label" >>"$results"
        done
        echo "${prefix}round $round done" >&2
    done
}

# alternate_paths LABEL:PORT:PID:PATH...: as alternate_many, each target
# with a path of its own (no `:` in it), appending to $results. With
# LOAD_TOOL=wrk, wrk loads instead of trellis-load (see wrk_run).
alternate_paths() {
    local targets=("$@") n=$#
    local pin
    load_pin
    for round in $(seq 1 "$rounds"); do
        for i in $(seq 0 $((n - 1))); do
            IFS=: read -r label port pid path <<<"${targets[$(((round - 1 + i) % n))]}"
            if [ "${LOAD_TOOL:-}" = wrk ]; then
                wrk_run "$label" "http://127.0.0.1:$port$path" "$pid" "${pin[@]}" >>"$results"
            else
                "${pin[@]}" "$bin/trellis-load" "http://127.0.0.1:$port$path" \
                    --connections "$connections" --duration "$duration" --warmup 2s \
                    --server-pid "$pid" --label "$label" >>"$results"
            fi
        done
        echo "round $round done" >&2
    done
}

# need_wrk: installs wrk (Debian's package) when it is missing.
need_wrk() {
    if ! command -v wrk >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
    fi
}

# wrk_run LABEL URL PID [PIN...]: one wrk run (a thread, $connections
# connections, $duration, after a 2 s warm-up run), printed as one JSON line
# in trellis-load's shape, with the server PID's CPU (user + system, from
# /proc) per request over the recorded run. wrk is Debian's package;
# installed when missing.
wrk_run() {
    local label=$1 url=$2 pid=$3
    shift 3
    need_wrk
    "$@" wrk -t1 -c"$connections" -d2s "$url" >/dev/null
    local ticks_before ticks_after json
    ticks_before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    json=$("$@" wrk -t1 -c"$connections" -d"$duration" -s benches/wrk-json.lua "$url" | tail -1)
    ticks_after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    python3 - "$label" "$json" "$((ticks_after - ticks_before))" "$(getconf CLK_TCK)" <<'PY'
import json, sys
label, run, ticks, hz = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
requests = max(run["requests"], 1)
print(json.dumps({
    "label": label, "tool": "wrk", "rps": run["rps"],
    "latency_ms": {"p50": run["p50"], "p95": run["p95"], "p99": run["p99"]},
    "server_cpu_us_per_request": ticks / hz * 1e6 / requests,
    "errors": run["errors"], "non_2xx": run["non_2xx"],
}))
PY
}

# hit_rate NAME METRICS_FILE REGEX: prints NAME's hit rate from a scrape of
# /metrics, where REGEX matches a sample line and captures its result
# (`hit`, `miss`, ...) and its value; other results are listed too.
hit_rate() {
    python3 - "$@" <<'PY'
import re, sys
name, path, pattern = sys.argv[1:4]
counts = {}
for line in open(path):
    m = re.match(pattern, line)
    if m:
        counts[m.group(1)] = counts.get(m.group(1), 0) + float(m.group(2))
hits, misses = counts.get("hit", 0), counts.get("miss", 0)
rest = "".join(f", {v:.0f} {k}" for k, v in counts.items() if k not in ("hit", "miss"))
print(f"{name}: hit rate {hits / max(hits + misses, 1):.1%} ({hits:.0f} hits, {misses:.0f} misses{rest})")
PY
}

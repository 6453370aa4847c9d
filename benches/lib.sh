# Shared by the compare scripts: waiting for a server, and alternating load
# rounds. Expects $bin, $rounds, $duration, $connections and $results.

# Waits until URL answers 2xx (20 s at most).
wait_for() {
    for _ in $(seq 1 200); do curl -sf "$1" >/dev/null && return; sleep 0.1; done
    echo "no answer from $1" >&2
    exit 1
}

# alternate LABEL_PREFIX PATH TRELLIS_PORT TRELLIS_PID NATIVE_PORT NATIVE_PID:
# $rounds rounds, each loading Trellis then native with the load tool
# pinned to CPU 1, appending one JSON line per run to $results.
alternate() {
    local prefix=$1 path=$2
    local -A port=([trellis]=$3 [native]=$5) pid=([trellis]=$4 [native]=$6)
    for round in $(seq 1 "$rounds"); do
        for target in trellis native; do
            taskset -c 1 "$bin/trellis-load" "http://127.0.0.1:${port[$target]}$path" \
                --connections "$connections" --duration "$duration" --warmup 2s \
                --server-pid "${pid[$target]}" --label "$prefix$target" >>"$results"
        done
        echo "${prefix}round $round done" >&2
    done
}

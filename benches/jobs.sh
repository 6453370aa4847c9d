#!/usr/bin/env bash
# benches/jobs.sh [JOBS=20000] [ROUNDS=3]: the job queue's throughput and
# pickup latency, in release builds on this machine's loopback.
#
# Throughput: JOBS no-op WASM jobs (the `tasks` test plugin's `noop` kind)
# are enqueued on an API node (`--role api,scheduler`), then worker
# processes (`--role worker`) start and drain the queue; jobs/s counts from
# the first completion to the last, read off the workers' own
# `trellis_job_attempts_total`. Runs: SQLite with 1 worker, PostgreSQL with
# 1 and with 2 workers, ROUNDS each, medians.
#
# Pickup: with the workers idle, 300 jobs enqueued one at a time (about
# 100/s) and each one's `attempted_at - created_at` from the job API.
# PostgreSQL: separate worker processes, woken by LISTEN/NOTIFY. SQLite: the
# embedded deployment, one node with every role (it drains and is woken by
# its own enqueues).
#
# Every loop is bounded in count and time; only loopback addresses are used.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh
jobs=${1:-20000}
setup 1 "${2:-3}" 1s 1
pg_url=${TRELLIS_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/test}
tasks=$PWD/target/guests/wasm32-wasip2/release/tasks.wasm
results=$work/results.jsonl

drop_namespace() {
    psql -q "$pg_url" -v ON_ERROR_STOP=0 >/dev/null 2>&1 <<'SQL' || true
DO $$ DECLARE r record; BEGIN
  FOR r IN SELECT nspname FROM pg_namespace WHERE nspname LIKE 'benchjobs%' LOOP
    EXECUTE format('DROP SCHEMA %I CASCADE', r.nspname); END LOOP;
  FOR r IN SELECT rolname FROM pg_roles WHERE rolname LIKE 'benchjobs%' LOOP
    EXECUTE format('DROP OWNED BY %I CASCADE', r.rolname);
    EXECUTE format('DROP ROLE %I', r.rolname); END LOOP;
END $$;
SQL
}

# config BACKEND: writes $work/BACKEND.toml.
config() {
    local db=""
    [ "$1" = postgres ] && db="[sql.postgres]
url = \"$pg_url\"
namespace = \"benchjobs\""
    cat >"$work/$1.toml" <<EOF
data_dir = "$work/data-$1"
[log]
level = "warn"
[limits]
deadline = "60s"
[jobs]
poll_interval = "1s"
maintenance_interval = "100ms"
claim_batch = 64
[jobs.queues]
default = 32
$db
[plugins.tasks]
path = "$tasks"
grants = ["log", "sql", "jobs"]

[plugins.tasks.limits]
max_enqueue = 5000
EOF
}

# node PORT ROLES BACKEND: starts a node, appends its pid to $pids.
node() {
    TRELLIS_SERVER__LISTEN="127.0.0.1:$1" "$bin/trellis" serve \
        --config "$work/$3.toml" --role "$2" >>"$work/nodes.log" 2>&1 &
    pids+=($!)
    wait_for "http://127.0.0.1:$1/healthz"
}

# scenario BACKEND WORKERS ROUND
scenario() {
    local backend=$1 workers=$2 round=$3
    stop_servers
    pids=()
    rm -rf "$work/data-$backend"
    [ "$backend" = postgres ] && drop_namespace
    config "$backend"
    node 18100 api,scheduler "$backend"
    local batches=$(((jobs + 4999) / 5000))
    for _ in $(seq 1 "$batches"); do
        curl -sf -X POST "http://127.0.0.1:18100/tasks/many/noop?n=5000" -d '{}' >/dev/null
    done
    local ports=() api=18100
    if [ "$backend" = sqlite ]; then
        # The embedded deployment: one node does everything, and its own
        # enqueues wake its workers.
        stop_servers
        pids=()
        node 18101 api,worker,scheduler "$backend"
        ports=(18101)
        api=18101
    else
        for i in $(seq 1 "$workers"); do
            node $((18100 + i)) worker "$backend"
            ports+=($((18100 + i)))
        done
    fi
    python3 benches/jobs.py drain --jobs $((batches * 5000)) --label "$backend-${workers}w" \
        --round "$round" "${ports[@]}" >>"$results"
    python3 benches/jobs.py pickup --api "$api" --label "$backend-${workers}w" \
        --round "$round" >>"$results"
}

for round in $(seq 1 "$rounds"); do
    scenario sqlite 1 "$round"
    scenario postgres 1 "$round"
    scenario postgres 2 "$round"
done
stop_servers
drop_namespace
python3 benches/jobs.py summary <"$results"

#!/usr/bin/env bash
# 100 note creates three ways, over one keep-alive connection, in one run:
# 100 single `POST /notes` requests, one `POST /api/v1/batch` of 100
# operations (grouped into one `batch-handler` call), and one
# `POST /notes/bulk` of 100 notes. Server on CPU 0, client on CPU 1; the
# notes' index jobs are not worked during the run, so they do not compete.
#
# Usage: benches/batch.sh [ROUNDS=5]
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
setup 1 "${1:-5}"

TRELLIS_SERVER__LISTEN=127.0.0.1:18095 TRELLIS_LOG__LEVEL=error TRELLIS_DATA_DIR="$work/data" \
    TRELLIS_JOBS__QUEUES='{ elsewhere = 1 }' \
    taskset -c 0 "$bin/trellis" serve &
pids+=($!)
wait_for http://127.0.0.1:18095/hello

taskset -c 1 python3 benches/batch.py 127.0.0.1:18095 "$rounds"

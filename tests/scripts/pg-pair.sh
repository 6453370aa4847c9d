#!/usr/bin/env bash
# A private PostgreSQL primary and a streaming read replica on loopback, for
# the sql replica tests: its own clusters (initdb + pg_basebackup -R) under
# one directory, so tests may pause replay or stop the primary without
# touching the machine's PostgreSQL.
#
# Usage: pg-pair.sh start|stop|pause-replay|resume-replay|stop-primary|start-primary|
#                   stop-replica|start-replica|status
# Env: PG_PAIR_SSL_CERT and PG_PAIR_SSL_KEY (PEM files): serve TLS only
#      (`ssl = on`, cleartext connections refused), for the TLS tests.
#      PG_PAIR_DIR (default /tmp/trellis-pg-pair), PG_PAIR_PRIMARY_PORT
#      (default 25432), PG_PAIR_REPLICA_PORT (default 25433). Keep the ports
#      below the kernel's ephemeral range (ip_local_port_range, 32768 and up
#      by default): there a test server bound to port 0 or an outgoing
#      connection may already hold the port, and the cluster cannot start.
set -euo pipefail
dir=${PG_PAIR_DIR:-/tmp/trellis-pg-pair}
primary_port=${PG_PAIR_PRIMARY_PORT:-25432}
replica_port=${PG_PAIR_REPLICA_PORT:-25433}
bin=/usr/lib/postgresql/$(ls /usr/lib/postgresql | sort -V | tail -n 1)/bin

as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
# pg_ctl with the node's server log shown when it fails, so a failure in CI
# says why (a port already in use, shared memory) rather than only
# "could not start server".
ctl() {
    as_pg "$bin/pg_ctl" -D "$dir/$1" -l "$dir/$1.log" -w -t 60 "${@:2}" && return
    local status=$?
    echo "pg-pair: pg_ctl $2 of the $1 failed; the end of $dir/$1.log:" >&2
    tail -n 20 "$dir/$1.log" >&2 2>/dev/null || true
    return "$status"
}
sql() { psql -h 127.0.0.1 -p "$1" -U postgres -d postgres -Atqc "$2"; }

configure() { # $1 data dir, $2 port
    cat >>"$dir/$1/postgresql.conf" <<CONF
port = $2
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
wal_level = replica
max_wal_senders = 5
hot_standby = on
fsync = off
CONF
    if [ -n "${PG_PAIR_SSL_CERT:-}" ]; then
        # The server reads its key only if no one else may: mode 0600,
        # owned by the user it runs as.
        cp "$PG_PAIR_SSL_CERT" "$dir/$1/server.crt"
        cp "$PG_PAIR_SSL_KEY" "$dir/$1/server.key"
        chmod 0600 "$dir/$1/server.crt" "$dir/$1/server.key"
        [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir/$1/server.crt" "$dir/$1/server.key"
        cat >>"$dir/$1/postgresql.conf" <<CONF
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
CONF
        cat >"$dir/$1/pg_hba.conf" <<HBA
local all all trust
hostssl all all 127.0.0.1/32 trust
hostssl replication all 127.0.0.1/32 trust
hostnossl all all 127.0.0.1/32 reject
HBA
        return
    fi
    cat >"$dir/$1/pg_hba.conf" <<HBA
local all all trust
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
HBA
}

start() {
    stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
    as_pg "$bin/initdb" -D "$dir/primary" -A trust -U postgres >"$dir/initdb.log"
    configure primary "$primary_port"
    ctl primary start >/dev/null
    as_pg "$bin/pg_basebackup" -h 127.0.0.1 -p "$primary_port" -U postgres \
        -D "$dir/replica" -R -X stream >"$dir/basebackup.log" 2>&1
    # The copied config still says the primary's port: the last line wins.
    echo "port = $replica_port" >>"$dir/replica/postgresql.conf"
    ctl replica start >/dev/null
    for _ in $(seq 1 50); do
        [ "$(sql "$replica_port" 'SELECT pg_is_in_recovery()' 2>/dev/null)" = t ] && break
        sleep 0.2
    done
    echo "primary 127.0.0.1:$primary_port replica 127.0.0.1:$replica_port"
}

stop() {
    for node in replica primary; do
        [ -d "$dir/$node" ] && ctl "$node" stop -m immediate >/dev/null 2>&1 || true
    done
    rm -rf "$dir"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    pause-replay)
        # The pause is requested, not immediate: wait until replay stopped.
        sql "$replica_port" 'SELECT pg_wal_replay_pause()' >/dev/null
        for _ in $(seq 1 100); do
            state=$(sql "$replica_port" 'SELECT pg_get_wal_replay_pause_state()')
            [ "$state" = paused ] && break
            sleep 0.1
        done
        [ "$state" = paused ] || { echo "replay did not pause: $state" >&2; exit 1; }
        ;;
    resume-replay) sql "$replica_port" 'SELECT pg_wal_replay_resume()' >/dev/null ;;
    stop-primary) ctl primary stop -m fast >/dev/null ;;
    start-primary) ctl primary start >/dev/null ;;
    stop-replica) ctl replica stop -m fast >/dev/null ;;
    start-replica) ctl replica start >/dev/null ;;
    status) sql "$primary_port" 'SELECT 1' && sql "$replica_port" 'SELECT pg_is_in_recovery()' ;;
    *) echo "usage: $0 start|stop|pause-replay|resume-replay|stop-primary|start-primary|stop-replica|start-replica|status" >&2; exit 2 ;;
esac

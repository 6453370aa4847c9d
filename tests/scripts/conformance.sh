#!/usr/bin/env bash
# Runs wasmtime's own test programs for `wasmtime serve`
# (crates/test-programs/src/bin/p2_api_proxy*.rs and p2_cli_serve_*.rs)
# under Trellis, mounted as wasi:http components, and checks that each
# answers as wasmtime's tests expect of `wasmtime serve`
# (tests/all/cli_tests.rs, crates/wasi-http/tests/all/p2.rs).
#
# Their code is not in this repository. The script takes a wasmtime
# checkout (WASMTIME_SRC, default: a shallow clone of the release matching
# the runtime's wasmtime into target/conformance/wasmtime), copies the
# programs and the WIT they need into target/conformance/programs, builds
# them for wasm32-wasip2, serves them with the debug trellis binary (built if
# missing) and talks curl to it. Needs Redis on 127.0.0.1:6379 (the
# keyvalue program's data is put there first, as `wasmtime serve
# -Skeyvalue-in-memory-data` would).
#
# With `wasmtime` as its argument it runs the same checks against
# `wasmtime serve` (benches/install-wasmtime.sh's build) instead: one
# process per program, with the options wasmtime's own tests give it, so
# the two can be compared case by case.
#
#   tests/scripts/conformance.sh           # `just conformance`
#   tests/scripts/conformance.sh wasmtime  # `just conformance wasmtime`
#
# Prints one line per check and a summary; exits 1 if any check fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
mode=${1:-trellis}
case $mode in
trellis | wasmtime) ;;
*) echo "usage: $0 [trellis|wasmtime]" >&2 && exit 2 ;;
esac
out=$root/target/conformance
mkdir -p "$out"

version=$(sed -n 's/^wasmtime = { version = "\([0-9.]*\)".*/\1/p' Cargo.toml)
src=${WASMTIME_SRC:-$out/wasmtime}
if [[ ! -d $src/crates/test-programs ]]; then
    git clone --depth 1 --branch "v$version" https://github.com/bytecodealliance/wasmtime "$src"
fi

echo "== building wasmtime's serve test programs from $src"
programs=$out/programs
rm -rf "$programs"
mkdir -p "$programs/src/bin" "$programs/wit"
crates=$src/crates
cp -r "$crates/wasi-http/wit" "$programs/wit/http"
cp -r "$crates/wasi-config/wit" "$programs/wit/config"
cp -r "$crates/wasi-keyvalue/wit" "$programs/wit/keyvalue"
cp "$crates/test-programs/src/http.rs" "$programs/src/"
cp "$crates"/test-programs/src/bin/p2_api_proxy*.rs "$crates"/test-programs/src/bin/p2_cli_serve_*.rs \
    "$programs/src/bin/"
# Their library, without the modules these programs do not use (wasi-nn,
# TLS, WASIp3, sockets): the `test` world's WASI 0.2 imports and the
# `proxy` world, at the WASI version of their checkout.
wasi=$(grep -rhoE "^package wasi:http@[0-9.]+" "$programs/wit/http" | head -1 | cut -d@ -f2)
{
    cat <<EOF
pub mod http;

wit_bindgen::generate!({
    inline: "
        package wasmtime:test;
        world test {
            include wasi:cli/imports@$wasi;
            include wasi:http/imports@$wasi;
            include wasi:config/imports@0.2.0-rc.1;
            include wasi:keyvalue/imports@0.2.0-draft;
        }
    ",
    path: ["wit/http", "wit/config", "wit/keyvalue"],
    world: "wasmtime:test/test",
    features: ["cli-exit-with-code"],
    generate_all,
});
EOF
    sed -n '/^pub mod proxy {/,/^}/p' "$crates/test-programs/src/lib.rs" |
        sed 's#"../wasi-http/wit"#"wit/http"#'
    sed -n '/^impl std::fmt::Display for wasi::io::error::Error/,$p' "$crates/test-programs/src/lib.rs"
} >"$programs/src/lib.rs"
cat >"$programs/Cargo.toml" <<'EOF'
[package]
name = "test-programs"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
anyhow = { version = "1", features = ["std"] }
wit-bindgen = { version = "0.60", features = ["default", "async-spawn", "inter-task-wakeup"] }
futures = { version = "0.3", default-features = false, features = ["std", "async-await"] }
url = "2"
sha2 = "0.10"
base64 = "0.22"

[workspace]
EOF
(cd "$programs" && CARGO_TARGET_DIR=$out/target cargo build -q --release --target wasm32-wasip2)
wasm=$out/target/wasm32-wasip2/release


free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# waits until something listens on 127.0.0.1:PORT
wait_port() {
    for _ in $(seq 1 150); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.2
    done
    return 1
}
servers=()
namespace=conformance-$$
cleanup() {
    ((${#servers[@]} == 0)) || kill "${servers[@]}" 2>/dev/null || true
    [[ $mode == trellis ]] &&
        redis-cli -h 127.0.0.1 del "$namespace:kv:p2_cli_serve_keyvalue:default" >/dev/null
    return 0
}
trap cleanup EXIT
declare -A ports

if [[ $mode == trellis ]]; then
    trellis=${CARGO_TARGET_DIR:-$root/target}/debug/trellis
    [[ -x $trellis ]] || cargo build -q -p trellis
    port=$(free_port)
    config=$out/trellis.toml
    {
        printf '[server]\nlisten = "127.0.0.1:%s"\n\n' "$port"
        printf '[redis]\nurl = "redis://127.0.0.1:6379"\nnamespace = "%s"\n\n' "$namespace"
        for program in "$wasm"/p2_*.wasm; do
            name=$(basename "$program" .wasm)
            printf '[plugins.%s]\npath = "%s"\n' "$name" "$program"
            case $name in
            p2_cli_serve_config) printf 'grants = ["config"]\n[plugins.%s.config]\nhello = "world"\n' "$name" ;;
            p2_cli_serve_keyvalue) printf 'grants = ["keyvalue"]\n' ;;
            p2_cli_serve_echo_env) printf 'env = { FOO = "bar" }\n' ;;
            p2_cli_serve_sleep) printf '[plugins.%s.limits]\ndeadline = "1s"\n' "$name" ;;
            p2_api_proxy_streaming | p2_api_proxy_forward_request)
                # Their outgoing requests go back to this server.
                printf 'grants = ["outbound-http"]\nallowed_outbound_hosts = ["http://127.0.0.1:%s"]\n' "$port"
                ;;
            esac
            printf '\n'
        done
    } >"$config"
    redis-cli -h 127.0.0.1 hset "$namespace:kv:p2_cli_serve_keyvalue:default" hello world >/dev/null
    log=$out/trellis.log
    "$trellis" serve --config "$config" >"$log" 2>&1 &
    servers+=($!)
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
        sleep 0.2
    done
    if ! curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; then
        echo "trellis did not start; its log:"
        tail -n 40 "$log"
        exit 1
    fi
else
    wasmtime=$(benches/install-wasmtime.sh)
    for program in "$wasm"/p2_*.wasm; do
        name=$(basename "$program" .wasm)
        ports[$name]=$(free_port)
        # The options wasmtime's tests serve each program with; the sleeper
        # gets the same 1 s limit as under Trellis.
        options=(-Scli)
        case $name in
        p2_cli_serve_config) options+=(-Sconfig -Sconfig-var=hello=world) ;;
        p2_cli_serve_keyvalue) options+=(-Skeyvalue -Skeyvalue-in-memory-data=hello=world) ;;
        p2_cli_serve_echo_env) options+=(--env=FOO=bar) ;;
        p2_cli_serve_sleep) options+=(-Wtimeout=1s) ;;
        esac
        "$wasmtime" serve --addr="127.0.0.1:${ports[$name]}" "${options[@]}" "$program" \
            >"$out/$name.stdout" 2>"$out/$name.stderr" &
        servers+=($!)
    done
    for name in "${!ports[@]}"; do
        if ! wait_port "${ports[$name]}"; then
            echo "wasmtime serve did not start $name:"
            tail -n 20 "$out/$name.stderr"
            exit 1
        fi
    done
fi

# url PROGRAM: where PROGRAM is served (mounted under Trellis, at the root
# of its own server under `wasmtime serve`)
url() {
    if [[ $mode == trellis ]]; then
        echo "http://127.0.0.1:$port/$1"
    else
        echo "http://127.0.0.1:${ports[$1]}"
    fi
}
# printed PROGRAM STREAM TEXT: how many of PROGRAM's STREAM lines hold TEXT
printed() {
    if [[ $mode == trellis ]]; then
        grep -c "stream=\"$2\".*$3\|$3.*stream=\"$2\"" "$log" || true
    else
        grep -c "$3" "$out/$1.$2" || true
    fi
}

passed=0
failed=()
# check NAME EXPECTED ACTUAL
check() {
    if [[ $2 == "$3" ]]; then
        passed=$((passed + 1))
        echo "ok    $1"
    else
        failed+=("$1")
        echo "FAIL  $1: expected [$2], got [$3]"
    fi
}
# status and body of a request: curl ARGS...
call() { curl -s -o "$out/body" -w '%{http_code}' --max-time 10 "$@"; }
body() { cat "$out/body"; }

hello=$(url p2_cli_serve_hello_world)
for i in 1 2 3; do check "hello_world request $i" "200 Hello, WASI!" "$(call "$hello/") $(body)"; done
check "config: wasi:config/store" "200 world" "$(call "$(url p2_cli_serve_config)/") $(body)"
check "keyvalue: wasi:keyvalue/store" "200 world" "$(call "$(url p2_cli_serve_keyvalue)/") $(body)"
check "echo_env: a variable set" "200 bar" \
    "$(curl -s -D - -o /dev/null -H 'env: FOO' "$(url p2_cli_serve_echo_env)/" |
        awk 'NR == 1 { s = $2 } tolower($1) == "env:" { v = $2 } END { sub(/\r/, "", v); print s, v }')"
check "echo_env: a variable not set" "200 " \
    "$(curl -s -D - -o /dev/null -H 'env: BAR' "$(url p2_cli_serve_echo_env)/" |
        awk 'NR == 1 { s = $2 } tolower($1) == "env:" { v = $2 } END { print s, v }')"
scheme=$(url p2_cli_serve_authority_and_scheme)
check "authority_and_scheme: GET with Host" "200" "$(call -H 'Host: localhost' "$scheme/")"
check "authority_and_scheme: CONNECT" "200" "$(call -X CONNECT -H 'Host: localhost' "$scheme/")"
for program in return_before_set trap_before_set; do
    for i in 1 2; do
        check "$program request $i: 500" "500" "$(call "$(url "p2_cli_serve_$program")/")"
    done
done
# Past its deadline: Trellis answers 504, `wasmtime serve` 500.
sleep_status=504
[[ $mode == wasmtime ]] && sleep_status=500
check "sleep: past the deadline" "$sleep_status" "$(call "$(url p2_cli_serve_sleep)/")"
for i in 1 2; do check "with_print request $i" "200" "$(call "$(url p2_cli_serve_with_print)/")"; done
sleep 0.5
for stream in stdout stderr; do
    check "with_print: its $stream lines logged" "2" \
        "$(printed p2_cli_serve_with_print "$stream" "this is half a print to $stream")"
done
proxy=$(url p2_api_proxy)
check "api_proxy: GET /test-path" "200 hello, world!" "$(call "$proxy/test-path") $(body)"
check "api_proxy: new_fields" "200" "$(call "$proxy/new_fields/50")"
check "api_proxy: modify_fields" "200" "$(call "$proxy/modify_fields/50")"
check "api_proxy: early drop" "200" "$(call "$proxy/early_drop")"
# The streaming proxy: a 1 MiB body echoed without buffering, the same
# piped through an outgoing request to its own echo, and the hashes of
# bodies fetched concurrently (under Trellis a host not allowed is denied;
# `wasmtime serve` has no allow-list, and nothing but loopback is asked).
head -c 1048576 /dev/urandom >"$out/random"
streaming=$(url p2_api_proxy_streaming)
check "api_proxy_streaming: echo" "200 same" \
    "$(call -H 'content-type: application/octet-stream' --data-binary @"$out/random" "$streaming/echo") \
$(cmp -s "$out/body" "$out/random" && echo same)"
check "api_proxy_streaming: double-echo" "200 same" \
    "$(call -H 'content-type: application/octet-stream' -H "url: $streaming/echo" \
        --data-binary @"$out/random" "$streaming/double-echo") $(cmp -s "$out/body" "$out/random" && echo same)"
hello_hash=$(python3 -c 'import base64, hashlib; print(base64.b64encode(hashlib.sha256(b"Hello, WASI!").digest()).decode().rstrip("="))')
if [[ $mode == trellis ]]; then
    status=$(call -H "url: $hello/" -H "url: $hello/?again" -H 'url: http://forbidden.example/' "$streaming/hash-all")
    check "api_proxy_streaming: hash-all" "200 2 1" \
        "$status $(grep -c ": $hello_hash$" "$out/body") $(grep -c 'forbidden.example/: .*HttpRequestDenied' "$out/body")"
else
    status=$(call -H "url: $hello/" -H "url: $hello/?again" "$streaming/hash-all")
    check "api_proxy_streaming: hash-all" "200 2" "$status $(grep -c ": $hello_hash$" "$out/body")"
fi
# It forwards to its request's authority: under Trellis its own server,
# with the hello program's mount as the path; under `wasmtime serve` the
# hello program's server, named in Host.
if [[ $mode == trellis ]]; then
    forwarded=$(call "$(url p2_api_proxy_forward_request)/p2_cli_serve_hello_world/")
else
    forwarded=$(call -H "Host: ${hello#http://}" "$(url p2_api_proxy_forward_request)/")
fi
check "api_proxy_forward_request: forwarded to its authority" "200 Hello, WASI!" "$forwarded $(body)"
if [[ $mode == trellis ]]; then
    check "the server still serves" "200" "$(call "http://127.0.0.1:$port/healthz")"
else
    check "the servers still serve" "200" "$(call "$hello/")"
fi

echo
echo "conformance ($mode): $passed passed, ${#failed[@]} failed${failed:+: ${failed[*]}}"
((${#failed[@]} == 0))

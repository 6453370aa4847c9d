# Developer and operator recipes. `cargo install just` to use them; each is a
# plain cargo command you can also run by hand.

# Serve the example plugins on 127.0.0.1:8080 (or with a config file).
serve config="":
    cargo run --release -p trellis -- serve {{ if config != "" { "--config " + config } else { "" } }}

# Validate a config and load its plugins without serving.
check config="examples/quickstart/trellis.toml":
    cargo run -p trellis -- check --config {{config}}

# The README's test command.
test:
    cargo test --workspace

# Build the guest plugins alone (the host build does this by itself).
plugins:
    cd plugins && cargo build --release --target wasm32-wasip2 --target-dir ../target/guests

# Criterion micro-benchmarks (per-request host cost).
bench:
    RUST_BACKTRACE=0 cargo bench -p trellis-benches --bench plugin_call

# The head-to-head: native hyper, `wasmtime serve` and Trellis (the same
# wasi:http component, and our own-world hello), alternating, medians,
# ratios; then hello and notes-read at a constant 1,000 req/s.
compare rounds="5" duration="10s" connections="64":
    benches/compare.sh {{rounds}} {{duration}} {{connections}}

# Outbound HTTP: Trellis (own world and a mounted component, pooled) against
# wasmtime serve (a connection per request) and the upstream straight.
compare-outbound rounds="3" duration="10s" connections="32":
    benches/compare-outbound.sh {{rounds}} {{duration}} {{connections}}

# A node at rest and at 1,000 req/s beside native hyper: idle CPU, CPU per
# request at low load against saturated.
idle rounds="3" duration="10s" seconds="30":
    benches/idle.sh {{rounds}} {{duration}} {{seconds}}

# hello in Rust, Python and JavaScript under the same load.
languages rounds="3" duration="10s":
    benches/languages.sh {{rounds}} {{duration}}

# One load run of a scenario against a running server (benches/scenarios/).
load scenario="hello" url="http://127.0.0.1:8080" *args="":
    cargo run --release -q -p trellis-benches --bin trellis-load -- {{url}} --scenario benches/scenarios/{{scenario}}.toml {{args}}

# Soak: `mixed` at 70 % of capacity for 10 minutes; RSS and fds must stay flat.
soak duration="600s":
    benches/soak.sh {{duration}}

# Line and branch coverage of the runtime (the whole suite) and the SDK
# (its native tests) with cargo-llvm-cov, installed if missing; `--html`
# also writes target/coverage/html/. Not in CI: it rebuilds everything
# instrumented.
coverage *args="":
    tests/scripts/coverage.sh {{args}}

# Lint examples/deploy/: the Kubernetes manifests against their schemas,
# the Dockerfile with hadolint, the systemd unit (as CI does).
deploy-check:
    examples/deploy/check.sh

# Build the container image (podman or docker) from the repository root.
image tag="trellis:dev" tool="podman":
    {{tool}} build -f examples/deploy/Dockerfile -t {{tag}} .

# The cargo-fuzz targets (fuzz/README.md), each for `seconds` (all, or those
# named); fails on a crash.
fuzz seconds="600" *targets="":
    fuzz/run.sh {{seconds}} {{targets}}

# wasmtime's own test programs for `wasmtime serve` (p2_api_proxy*,
# p2_cli_serve_*) served by Trellis and checked as wasmtime's tests check
# them. WASMTIME_SRC=<a wasmtime checkout>, else it clones the release
# matching ours. Needs Redis on 6379. Not in CI: it needs GitHub.
# `just conformance wasmtime` runs the same checks against `wasmtime serve`.
conformance server="trellis":
    tests/scripts/conformance.sh {{server}}

# Overload and the scenario smoke (also part of `just test`).
stress:
    cargo test -p trellis-tests --test integration stress

# The chaos tests: a worker killed with SIGKILL mid-job, PostgreSQL stopped
# and started (a private cluster), Redis stopped and frozen (a private
# redis-server), SIGTERM with requests and jobs in flight. They are
# tests/integration/chaos.rs and the ones that live with their area, named
# here. None is ignored (each takes well under a minute), so CI runs them as
# part of the test command; this runs only them.
chaos:
    cargo test --workspace --test integration -- --test-threads=2 \
        chaos:: shutdown:: a_job_of_a_killed_worker_is_rescued survive_the_leader \
        a_postgres_restart_loses_no_job shutdown_interrupts_and_returns_unfinished_jobs \
        a_frozen_ redis_stopped_mid_run

# Format host and guest code.
fmt:
    cargo fmt --all
    cd plugins && cargo fmt --all

# Lints, as CI runs them.
lint:
    cargo fmt --all -- --check
    cd plugins && cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    cd plugins && cargo clippy --workspace --target wasm32-wasip2 --target-dir ../target/guests -- -D warnings

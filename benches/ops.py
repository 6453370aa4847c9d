"""Operator timings: start (process start → /readyz 200) cold and warm with
1 and 10 plugins, and reload swap time (upload → the new version serving).

Usage: python3 benches/ops.py BIN WORKDIR GUESTS_DIR [ROUNDS=5]
BIN is the release `trellis`; GUESTS_DIR holds the built guest components.
Prints medians (and min/max) in milliseconds; loopback only, every loop
bounded in count and time.
"""
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request

bin_path, work, guests = sys.argv[1], sys.argv[2], sys.argv[3]
rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 5
PORT = 18300
BASE = f"http://127.0.0.1:{PORT}"


def guest(name):
    return os.path.join(guests, f"{name}.wasm")


def hello_variants(n):
    """`hello` with its routes renamed (/hel00, /hel01, ...): same size,
    distinct bytes, so each compiles on its own and no routes conflict."""
    data = open(guest("hello"), "rb").read()
    paths = []
    for i in range(n):
        path = os.path.join(work, f"hello{i:02}.wasm")
        with open(path, "wb") as f:
            f.write(data.replace(b"/hello", f"/hel{i:02}".encode()))
        paths.append(path)
    return paths


def config(plugin_count):
    if plugin_count == 1:
        plugins = [("hello", guest("hello"), '["log", "config"]')]
    else:
        plugins = [
            ("echo", guest("echo"), '["log"]'),
            ("misbehave", guest("misbehave"), '["config", "sql"]'),
            ("notes", guest("notes"), '["log", "sql", "cache", "jobs"]'),
            ("kv", guest("kv"), '["cache", "lock", "sql"]'),
            ("tasks", guest("tasks"), '["log", "sql", "jobs"]'),
        ]
        for i, path in enumerate(hello_variants(plugin_count - len(plugins))):
            plugins.append((f"hello{i:02}", path, '["log", "config"]'))
    toml = "\n".join(
        f"[plugins.{name}]\npath = {json.dumps(path)}\ngrants = {grants}\n"
        for name, path, grants in plugins
    )
    path = os.path.join(work, f"plugins-{plugin_count}.toml")
    with open(path, "w") as f:
        f.write(toml)
    return path


def get(path, timeout=2.0):
    try:
        with urllib.request.urlopen(BASE + path, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)
    except OSError:
        return None, b"", {}


def start(config_path, data_dir, cache_dir):
    env = dict(os.environ)
    env.update(
        TRELLIS_SERVER__LISTEN=f"127.0.0.1:{PORT}",
        TRELLIS_DATA_DIR=data_dir,
        TRELLIS_ENGINE__CACHE_DIR=cache_dir,
        TRELLIS_LOG__LEVEL="warn",
    )
    env.pop("RUST_BACKTRACE", None)
    began = time.perf_counter()
    proc = subprocess.Popen(
        [bin_path, "serve", "--config", config_path],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = began + 60
    while time.perf_counter() < deadline:
        if get("/readyz", timeout=0.5)[0] == 200:
            return proc, (time.perf_counter() - began) * 1000
        if proc.poll() is not None:
            raise SystemExit(f"trellis exited with {proc.returncode}")
        time.sleep(0.002)
    proc.kill()
    raise SystemExit("trellis never became ready")


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def summary(label, values):
    print(
        f"{label:<28} median {statistics.median(values):8.1f} ms"
        f"   min {min(values):8.1f}   max {max(values):8.1f}   (n={len(values)})"
    )


for count in (1, 10):
    path = config(count)
    cold, warm = [], []
    for r in range(rounds):
        data = os.path.join(work, f"data-{count}-{r}")
        cache = os.path.join(work, f"cache-{count}-{r}")
        proc, ms = start(path, data, cache)
        stop(proc)
        cold.append(ms)
        proc, ms = start(path, data, cache)
        stop(proc)
        warm.append(ms)
    summary(f"start cold, {count} plugin(s)", cold)
    summary(f"start warm, {count} plugin(s)", warm)

# Reload: alternate two versions of `hello` 20 times per round.
toml = os.path.join(work, "reload.toml")
with open(toml, "w") as f:
    f.write(
        f'[plugins.hello]\npath = {json.dumps(guest("hello"))}\n'
        'grants = ["log", "config", "sql"]\n'
    )
versions = [open(guest("hello_next"), "rb").read(), open(guest("hello"), "rb").read()]
proc, _ = start(toml, os.path.join(work, "data-reload"), os.path.join(work, "cache-reload"))
# No admin.tokens: uploads take the node's own token from its data directory.
with open(os.path.join(work, "data-reload", "admin-token")) as f:
    admin_token = f.read().strip()
swaps = []
try:
    for i in range(20 * rounds):
        body = versions[i % 2]
        expect_next = i % 2 == 0
        began = time.perf_counter()
        request = urllib.request.Request(
            BASE + "/admin/plugins/hello",
            data=body,
            method="PUT",
            headers={"authorization": f"Bearer {admin_token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            assert r.status == 200, r.status
        for _ in range(1000):
            status, _, headers = get("/hello")
            if status == 200 and ("x-hello-version" in {k.lower() for k in headers}) == expect_next:
                break
        swaps.append((time.perf_counter() - began) * 1000)
finally:
    stop(proc)
summary("reload: upload → serving", swaps)

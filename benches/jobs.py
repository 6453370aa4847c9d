"""Helpers of benches/jobs.sh: drain (throughput), pickup (latency), summary.

drain PORT...: polls the workers' /metrics every 20 ms (at most 300 s)
until they completed --jobs attempts; prints one JSON line with jobs/s
from the first completion seen to the last.

pickup: enqueues 300 `record` jobs one at a time (~100/s) through the API
node and prints p50/p95/max of attempted_at - created_at.

summary: reads the JSON lines and prints medians per label.
"""

import argparse
import datetime
import json
import re
import statistics
import sys
import time
import urllib.request

COMPLETED = re.compile(
    r'^trellis_job_attempts_total\{[^}]*outcome="completed"[^}]*\} (\d+(?:\.\d+)?)', re.M
)


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def post(url, body=b"{}"):
    req = urllib.request.Request(url, data=body, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def completed(ports):
    total = 0
    for port in ports:
        text = get(f"http://127.0.0.1:{port}/metrics")
        total += sum(float(v) for v in COMPLETED.findall(text))
    return total


def drain(args):
    first = None
    start_count = 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        now = time.monotonic()
        done = completed(args.ports)
        if first is None and done > 0:
            first, start_count = now, done
        if done >= args.jobs:
            rate = (done - start_count) / max(now - first, 1e-3)
            print(json.dumps({"kind": "drain", "label": args.label, "round": args.round,
                              "jobs": int(done), "jobs_per_s": round(rate, 1)}))
            return
        time.sleep(0.02)
    sys.exit(f"{args.label}: the queue did not drain within 300 s")


def parse(ts):
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000


def pickup(args):
    base = f"http://127.0.0.1:{args.api}"
    ids = []
    for _ in range(300):
        ids.append(post(f"{base}/tasks/enqueue/record")["id"])
        time.sleep(0.01)
    latencies = []
    deadline = time.monotonic() + 60
    for job_id in ids:
        while True:
            job = json.loads(get(f"{base}/api/v1/jobs/{job_id}"))
            if job["state"] == "completed":
                latencies.append(parse(job["attempted_at"]) - parse(job["created_at"]))
                break
            if time.monotonic() > deadline:
                sys.exit(f"{args.label}: job {job_id} did not complete")
            time.sleep(0.05)
    latencies.sort()
    q = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))]
    print(json.dumps({"kind": "pickup", "label": args.label, "round": args.round,
                      "p50_ms": q(0.50), "p95_ms": q(0.95), "max_ms": latencies[-1]}))


def summary(_args):
    rows = [json.loads(line) for line in sys.stdin if line.strip()]
    labels = sorted({r["label"] for r in rows}, key=lambda l: [r["label"] for r in rows].index(l))
    print(f"{'run':<14}{'jobs/s (median)':>17}{'runs':>28}{'pickup p50':>12}{'p95':>8}{'max':>8}")
    for label in labels:
        drains = [r["jobs_per_s"] for r in rows if r["label"] == label and r["kind"] == "drain"]
        picks = [r for r in rows if r["label"] == label and r["kind"] == "pickup"]
        p50 = statistics.median(r["p50_ms"] for r in picks) if picks else float("nan")
        p95 = statistics.median(r["p95_ms"] for r in picks) if picks else float("nan")
        mx = max(r["max_ms"] for r in picks) if picks else float("nan")
        runs = ", ".join(f"{d:,.0f}" for d in drains)
        print(f"{label:<14}{statistics.median(drains):>17,.0f}{runs:>28}"
              f"{p50:>10.0f}ms{p95:>6.0f}ms{mx:>6.0f}ms")


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("drain")
    d.add_argument("--jobs", type=int, required=True)
    d.add_argument("--label", required=True)
    d.add_argument("--round", type=int, default=1)
    d.add_argument("ports", nargs="+", type=int)
    p = sub.add_parser("pickup")
    p.add_argument("--api", type=int, required=True)
    p.add_argument("--label", required=True)
    p.add_argument("--round", type=int, default=1)
    sub.add_parser("summary")
    args = parser.parse_args()
    {"drain": drain, "pickup": pickup, "summary": summary}[args.command](args)


if __name__ == "__main__":
    main()

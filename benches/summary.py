"""Medians of load runs, per label, and ratios between labels.

Usage: python3 benches/summary.py [--markdown] RESULTS.jsonl LABEL... -- A/B...
Prints one row per LABEL (median req/s, p50, p95, p99, server CPU per request,
errors summed) and, for each A/B, A's req/s and CPU per request relative to
B's, e.g. "trellis/native: 0.25x req/s (75.0 % fewer), 4.80x CPU per request".
"""
import json
import statistics
import sys

args = sys.argv[1:]
markdown = "--markdown" in args
args = [a for a in args if a != "--markdown"]
path, rest = args[0], args[1:]
split = rest.index("--") if "--" in rest else len(rest)
labels, pairs = rest[:split], rest[split + 1 :]
runs = [json.loads(line) for line in open(path)]


def med(label, f):
    return statistics.median(f(r) for r in runs if r["label"] == label)


rows = {}
for label in labels:
    rows[label] = dict(
        rps=med(label, lambda r: r["rps"]),
        p50=med(label, lambda r: r["latency_ms"]["p50"]),
        p95=med(label, lambda r: r["latency_ms"]["p95"]),
        p99=med(label, lambda r: r["latency_ms"]["p99"]),
        cpu=med(label, lambda r: r["server_cpu_us_per_request"] or 0.0),
        errors=sum(r["errors"] + r["non_2xx"] for r in runs if r["label"] == label),
    )
width = max([len("server")] + [len(label) for label in rows])
print(f"{'server':<{width}} {'req/s':>10} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'CPU µs/req':>11} {'errors':>7}")
for label, r in rows.items():
    print(f"{label:<{width}} {r['rps']:>10.0f} {r['p50']:>8.2f} {r['p95']:>8.2f} {r['p99']:>8.2f} {r['cpu']:>11.1f} {r['errors']:>7}")
for pair in pairs:
    a, b = (rows[x] for x in pair.split("/"))
    print(
        f"{pair}: {a['rps'] / b['rps']:.2f}x req/s "
        f"({abs(1 - a['rps'] / b['rps']) * 100:.1f} % {'fewer' if a['rps'] < b['rps'] else 'more'}), "
        f"{a['cpu'] / max(b['cpu'], 1e-9):.2f}x CPU per request, "
        f"p99 {a['p99']:.2f} vs {b['p99']:.2f} ms"
    )
if markdown:
    print()
    print("| server | req/s | p50 ms | p95 ms | p99 ms | CPU µs/request | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, r in rows.items():
        print(f"| {label} | {r['rps']:,.0f} | {r['p50']:.2f} | {r['p95']:.2f} | {r['p99']:.2f} | {r['cpu']:.1f} | {r['errors']} |")
    print()
    print("| ratio | req/s | CPU per request | p99 |")
    print("|---|---:|---:|---:|")
    for pair in pairs:
        a, b = (rows[x] for x in pair.split("/"))
        print(f"| {pair} | {a['rps'] / b['rps']:.2f}× | {a['cpu'] / max(b['cpu'], 1e-9):.2f}× | {a['p99']:.2f} vs {b['p99']:.2f} ms |")

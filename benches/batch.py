"""100 note creates as single requests, as one batch (batch-handler) and as
one bulk request, over one keep-alive connection each; rounds rotate the
order. Prints per-round times, medians and ratios.

Usage: batch.py HOST:PORT ROUNDS
"""

import http.client
import json
import statistics
import sys
import time

ITEMS = 100


def post(conn, path, body):
    conn.request("POST", path, body=json.dumps(body), headers={"content-type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    return response.status, data


def singles(conn, tag):
    for i in range(ITEMS):
        status, data = post(conn, "/notes", {"title": f"{tag}-{i}", "body": "one two three"})
        if status != 201:
            raise SystemExit(f"single create answered {status}: {data[:200]!r}")


def batch(conn, tag):
    ops = [
        {"method": "POST", "path": "/notes", "body": {"title": f"{tag}-{i}", "body": "one two three"}}
        for i in range(ITEMS)
    ]
    status, data = post(conn, "/api/v1/batch", {"operations": ops})
    results = json.loads(data)["results"] if status == 200 else []
    if status != 200 or any(r["status"] != 201 for r in results) or len(results) != ITEMS:
        raise SystemExit(f"batch answered {status}: {data[:300]!r}")


def bulk(conn, tag):
    notes = [{"title": f"{tag}-{i}", "body": "one two three"} for i in range(ITEMS)]
    status, data = post(conn, "/notes/bulk", notes)
    results = json.loads(data)["results"] if status == 200 else []
    if status != 200 or any(r["status"] != 201 for r in results) or len(results) != ITEMS:
        raise SystemExit(f"bulk answered {status}: {data[:300]!r}")


def main():
    addr, rounds = sys.argv[1], int(sys.argv[2])
    host, port = addr.rsplit(":", 1)
    ways = [("singles", singles), ("batch", batch), ("bulk", bulk)]
    times = {name: [] for name, _ in ways}
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    # Warm-up: the first instances, the database file, the connection.
    for name, way in ways:
        way(conn, f"warm-{name}")
    for r in range(rounds):
        order = ways[r % len(ways):] + ways[: r % len(ways)]
        for name, way in order:
            started = time.perf_counter()
            way(conn, f"r{r}-{name}")
            times[name].append((time.perf_counter() - started) * 1000)
        print(f"round {r + 1}: " + "  ".join(f"{n} {times[n][-1]:.1f} ms" for n, _ in ways), file=sys.stderr)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"{'way':<8} {'median ms':>10} {'per note µs':>12}")
    for name, _ in ways:
        print(f"{name:<8} {medians[name]:>10.1f} {medians[name] * 1000 / ITEMS:>12.0f}")
    print(f"batch vs singles: {medians['singles'] / medians['batch']:.1f}x faster")
    print(f"bulk vs singles: {medians['singles'] / medians['bulk']:.1f}x faster")


if __name__ == "__main__":
    main()

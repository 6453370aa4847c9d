-- wrk's result as one JSON line (benches/lib.sh's wrk_run adds the
-- server's CPU): requests, requests/s, latency percentiles in ms, errors.
done = function(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local errors = summary.errors
  io.write(string.format(
    '{"requests":%d,"rps":%.1f,"p50":%.3f,"p95":%.3f,"p99":%.3f,"errors":%d,"non_2xx":%d}\n',
    summary.requests, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    errors.connect + errors.read + errors.write + errors.timeout, errors.status))
end

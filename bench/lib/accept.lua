-- wrk script: sends the Accept header real clients send when pulling by tag (and the bearer token
-- in the token-auth variant), and prints the summary as one JSON line (prefixed "WRKJSON ") that
-- bench/lib/tools.mjs parses.
wrk.method = "GET"
wrk.headers["Accept"] = os.getenv("WRK_ACCEPT") or "application/vnd.oci.image.manifest.v1+json"
-- BENCH_AUTH=token: the bearer token fetched right before this run (empty: no header).
local authorization = os.getenv("WRK_AUTHORIZATION")
if authorization and authorization ~= "" then wrk.headers["Authorization"] = authorization end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end

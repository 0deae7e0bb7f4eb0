-- The end of every wrk script here (wrk-get.lua, wrk-post.lua,
-- wrk-paths.lua), loaded by each: print the latency percentiles in the
-- RESULT line the benchmark scripts read. wrk itself reports any non-2xx
-- answers.
function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d errors=%d p50_ms=%.1f p90_ms=%.1f p99_ms=%.1f max_ms=%.1f\n",
    summary.requests, summary.errors.status + summary.errors.timeout + summary.errors.connect +
    summary.errors.read + summary.errors.write,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end

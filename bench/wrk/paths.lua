-- wrk script: requests over the paths listed in $BENCH_PATHS (one per line), each with
-- the bearer token in $BENCH_TOKEN; $BENCH_METHOD and $BENCH_BODY (JSON) for writes.
-- Each thread starts at its own place in the list. At the end one line, BENCH_JSON {...},
-- carries what bench/drive.py reads: requests, duration and latency percentiles (µs),
-- and errors (non-2xx/3xx statuses and socket errors, counted apart).
local token = os.getenv("BENCH_TOKEN")
local method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY")
local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS")) do
  paths[#paths + 1] = line
end

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("offset", threads * 7919)
end

local i = 0
function request()
  i = i + 1
  local path = paths[((offset or 0) + i) % #paths + 1]
  local headers = {}
  if token and token ~= "" then
    headers["Authorization"] = "Bearer " .. token
  end
  if body then
    headers["Content-Type"] = "application/json"
  end
  return wrk.format(method, path, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"status_errors":%d,"socket_errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end

-- Closed-loop POST load for bench/api_bench.py: each request sends the next line of BODIES,
-- with "@ID@" (if present) replaced by a fresh id; counts statuses and OK_MARK in the replies.
local bodies = {}
local threads = {}
local prefix = os.getenv("RUN_ID") or "wrk"
local mark = os.getenv("OK_MARK")
local ok_status = tonumber(os.getenv("OK_STATUS") or "200")

function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(os.getenv("BODIES")) do
    table.insert(bodies, line)
  end
  counter, ok, statuses = 0, 0, {}
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  local auth = os.getenv("AUTHORIZATION")
  if auth and auth ~= "" then
    wrk.headers["Authorization"] = auth
  end
end

function request()
  counter = counter + 1
  local body = bodies[(counter % #bodies) + 1]
  body = body:gsub("@ID@", prefix .. "-" .. thread_id .. "-" .. counter, 1)
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  if status == ok_status and (mark == nil or body:find(mark, 1, true)) then
    ok = ok + 1
  end
end

function done(summary, latency, requests)
  local total_ok, merged = 0, {}
  for _, thread in ipairs(threads) do
    total_ok = total_ok + thread:get("ok")
    for status, n in pairs(thread:get("statuses")) do
      merged[status] = (merged[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(merged) do
    table.insert(parts, status .. ":" .. n)
  end
  local errors = summary.errors
  io.write(string.format(
    "WRK requests=%d duration_us=%d p50_us=%d p95_us=%d p99_us=%d max_us=%d ok=%d "
      .. "socket_errors=%d statuses=%s\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99),
    latency.max, total_ok, errors.connect + errors.read + errors.write + errors.timeout,
    table.concat(parts, ",")))
end

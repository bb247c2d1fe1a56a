-- wrk script: POST prepared bodies in turn, each thread starting at a different one.
-- Usage: wrk -s bench/wrk/requests.lua <url> -- <requests file>
-- (bench/wrk/paced.lua adds a fixed request rate: a second argument, requests/s per thread.)
-- The file (written by bench/workload.py) is the bearer token on the first line, then for
-- each request a line "PATH LENGTH" followed by LENGTH bytes of JSON body.
-- Requests are formatted once in init(), so the hot path only hands out prebuilt strings.

local requests = {}
local count = 0
local index = 0
local next_thread = 0

function setup(thread)
  thread:set("thread_no", next_thread)
  next_thread = next_thread + 1
end

function init(args)
  local f = assert(io.open(args[1], "rb"))
  local data = f:read("*a")
  f:close()
  local eol = string.find(data, "\n", 1, true)
  local headers = {
    ["Authorization"] = "Bearer " .. string.sub(data, 1, eol - 1),
    ["Content-Type"] = "application/json",
  }
  local pos = eol + 1
  while pos <= #data do
    eol = string.find(data, "\n", pos, true)
    local path, len = string.match(string.sub(data, pos, eol - 1), "^(%S+) (%d+)$")
    len = tonumber(len)
    count = count + 1
    requests[count] = wrk.format("POST", path, headers, string.sub(data, eol + 1, eol + len))
    pos = eol + len + 1
  end
  index = ((thread_no or 0) * 7919) % count
  pace_per_s = tonumber(args[2])
end

function request()
  index = index % count + 1
  return requests[index]
end

-- One JSON line the harness parses; latency in microseconds.
function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"non_2xx":%d,"timeouts":%d,"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,' ..
    '"p99":%d,"max":%d}}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max))
end

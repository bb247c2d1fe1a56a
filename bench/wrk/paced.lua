-- wrk script: requests.lua at a fixed rate.
-- Usage: wrk -s bench/wrk/paced.lua <url> -- <requests file> <requests per second per thread>
-- Each request has its due time on a fixed schedule, whatever the answers to the earlier ones
-- took (open loop, as long as a connection is free: the harness gives enough of them, and
-- reports the rate reached). wrk's delay() is in whole milliseconds, so the requests due in
-- the same millisecond leave together. Kept apart from requests.lua because wrk puts every
-- request of a script that defines delay() behind a timer, paced or not.

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "requests.lua")

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock, bench_timespec *ts);
]])
local now_ts = ffi.new("bench_timespec")
local due_ms = nil

local function now_ms()
  ffi.C.clock_gettime(1, now_ts) -- CLOCK_MONOTONIC
  return tonumber(now_ts.tv_sec) * 1000 + tonumber(now_ts.tv_nsec) / 1e6
end

function delay()
  local now = now_ms()
  if not due_ms then
    due_ms = now
  end
  local wait = due_ms - now
  due_ms = due_ms + 1000 / pace_per_s
  if wait <= 0 then
    return 0 -- behind schedule: at once (the schedule is kept, so it catches up)
  end
  return math.floor(wait)
end

-- wrk script of scripts/bench. Arguments after `--`: METHOD PATH [BODIES_FILE]
-- BODIES_FILE holds one JSON body per line (written by bench.py, already JSON-escaped); each
-- thread cycles through them from its own offset, so threads do not send the same text together.
-- done() prints one machine-readable line, BENCH_JSON {...}, so nothing parses wrk's prose.

local counter = 0
local requests = {}
local index = 0

function setup(thread)
  thread:set("offset", counter * 97)
  counter = counter + 1
end

function init(args)
  local method, path, file = args[1] or "GET", args[2] or "/", args[3]
  if file then
    local headers = { ["Content-Type"] = "application/json" }
    for line in io.lines(file) do
      if line ~= "" then
        requests[#requests + 1] = wrk.format(method, path, headers, line)
      end
    end
    assert(#requests > 0, "no request bodies in " .. file)
  else
    requests[1] = wrk.format(method, path)
  end
  index = (offset or 0) % #requests
end

-- Requests are formatted once in init(): request() only picks the next one.
function request()
  index = index % #requests + 1
  return requests[index]
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, '
      .. '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, '
      .. '"max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end

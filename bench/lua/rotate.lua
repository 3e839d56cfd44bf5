-- wrk script: send pre-built requests from a file, one per line:
--   METHOD<TAB>PATH<TAB>TOKEN<TAB>BODY[<TAB>Header-Name: value ...]
-- wrk args: <file> <threads> <cycle|once> [header=value ...]
--   cycle: every thread loops over all requests, each starting at its own offset;
--   once:  each thread sends its own slice of the file once, then stops (no request repeats,
--          except at most one per connection at the very end).
-- done() prints one line "BENCH_RESULT {json}" with the counts and latency percentiles (us).

local thread_count = 0

function setup(thread)
  thread:set("tid", thread_count)
  thread_count = thread_count + 1
end

local requests = {}
local index = 0
local once = false

function init(args)
  local file, threads, mode = args[1], tonumber(args[2]), args[3]
  once = (mode == "once")
  local headers = {}
  for i = 4, #args do
    local name, value = args[i]:match("^([^=]+)=(.*)$")
    headers[name] = value
  end
  local lines = {}
  for line in io.lines(file) do
    lines[#lines + 1] = line
  end
  local first, last = 1, #lines
  if once then
    local per = math.floor(#lines / threads)
    first, last = tid * per + 1, (tid + 1) * per
  end
  for i = first, last do
    local fields = {}
    for value in (lines[i] .. "\t"):gmatch("([^\t]*)\t") do
      fields[#fields + 1] = value
    end
    local method, path, token, body = fields[1], fields[2], fields[3] or "", fields[4] or ""
    local h = {}
    for k, v in pairs(headers) do
      h[k] = v
    end
    for f = 5, #fields do
      local name, value = fields[f]:match("^([^:]+):%s*(.*)$")
      if name then
        h[name] = value
      end
    end
    if token ~= "" then
      h["better-auth-token"] = token
    end
    if body ~= nil and body ~= "" then
      h["Content-Type"] = "application/json"
    else
      body = nil
    end
    requests[#requests + 1] = wrk.format(method, path, h, body)
  end
  if not once then
    index = (tid * 7919) % #requests
  end
end

function request()
  index = index + 1
  if index > #requests then
    if once then
      wrk.thread:stop()
      return requests[#requests]
    end
    index = 1
  end
  return requests[index]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end

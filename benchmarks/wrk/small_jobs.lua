-- wrk: 10-item POST /batch/jobs bodies, each request's content hashes unique.
-- The API key comes from the environment (BATCH_API_KEY), never from the command line.
local counter = 0
thread_id = 0
local threads = {}

function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("BATCH_API_KEY")
end

function request()
  counter = counter + 1
  local items = {}
  for k = 0, 9 do
    items[#items + 1] = string.format('{"content_hash":"%016x%016x%032x"}', thread_id, counter, k)
  end
  local body = '{"job_type":"query","items":[' .. table.concat(items, ",") .. ']}'
  return wrk.format(nil, "/batch/jobs", nil, body)
end

non_202 = 0
function response(status, headers, body)
  if status ~= 202 then
    non_202 = non_202 + 1
  end
end

function done(summary, latency, requests)
  local failed = 0
  for _, thread in ipairs(threads) do
    failed = failed + (thread:get("non_202") or 0)
  end
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "non_202": %d, "p50_ms": %.1f, "p99_ms": %.1f, "errors": %d}\n',
    summary.requests, summary.duration / 1e6, failed,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.status + summary.errors.timeout))
end

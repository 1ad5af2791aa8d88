-- wrk script for bench/run: POST one OpenAI chat request on every keep-alive
-- connection and print a single machine-readable summary line.
--
-- BENCH_BODY names the JSON file sent as the request body. The URL given to
-- wrk carries the path, so the same script drives all three paths.
-- BENCH_METHOD=GET sends a GET without a body instead (the models list).

local function read_file(name)
  local f = assert(io.open(name, "rb"), "cannot open " .. tostring(name))
  local data = f:read("*a")
  f:close()
  return data
end

if os.getenv("BENCH_METHOD") == "GET" then
  wrk.method = "GET"
else
  wrk.method = "POST"
  wrk.body = read_file(os.getenv("BENCH_BODY"))
  wrk.headers["Content-Type"] = "application/json"
end
wrk.headers["Accept"] = "application/json"
-- A client credential as an SDK would send it; the gateway uses its own key
-- upstream and the mock upstream ignores it.
wrk.headers["Authorization"] = "Bearer sk-bench-client"

-- No request()/response() callbacks: they would run Lua per request and make
-- the client, not the server, the thing being measured.

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d" ..
    " non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, e.status, e.connect, e.read, e.write, e.timeout))
end

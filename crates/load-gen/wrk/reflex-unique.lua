-- wrk script: POST /v1/reflex/check with a different text every request, so
-- every request is a cache miss. Token from the WRK_TOKEN environment variable.
local counter = 0
local token = os.getenv("WRK_TOKEN") or ""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. token

request = function()
  counter = counter + 1
  local body = string.format(
    '{"text":"Request %d-%d: please summarise the attached quarterly report and list three risks the finance team should watch next quarter. Keep it under 200 words."}',
    counter, math.random(1, 1000000000))
  return wrk.format(nil, "/v1/reflex/check", nil, body)
end

-- Pacing: each connection waits WRK_DELAY_MS between requests, so
-- connections / (delay + latency) sets the rate (e.g. -c 7 with 1 ms ≈ 5,000/s).
local pause = tonumber(os.getenv("WRK_DELAY_MS") or "0")
if pause > 0 then
  delay = function() return pause end
end

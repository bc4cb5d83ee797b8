-- wrk script: POST /v1/reflex/check with a different text every request, so
-- every request is a cache miss. Token from the WRK_TOKEN environment variable.
local counter = 0
-- A fresh prefix per run, so a second run does not repeat the first one's texts.
local run = string.format("%d-%d", os.time(), math.floor(os.clock() * 1e6))
math.randomseed(os.time())
local token = os.getenv("WRK_TOKEN") or ""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. token

request = function()
  counter = counter + 1
  local body = string.format(
    '{"text":"Request %s-%d-%d: please summarise the attached quarterly report and list three risks the finance team should watch next quarter. Keep it under 200 words."}',
    run, counter, math.random(1, 1000000000))
  return wrk.format(nil, "/v1/reflex/check", nil, body)
end

-- Pacing: each connection waits WRK_DELAY_MS between requests, so
-- connections / (delay + latency) sets the rate (e.g. -c 7 with 1 ms ≈ 5,000/s).
local pause = tonumber(os.getenv("WRK_DELAY_MS") or "0")
if pause > 0 then
  delay = function() return pause end
end

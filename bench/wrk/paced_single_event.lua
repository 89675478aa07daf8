-- single_event.lua, paced: each connection waits DELAY_MS between requests, so the offered rate
-- is about connections * 1000 / (DELAY_MS + latency). Used to read latency at a given rate.
local counter = 0
local delay_ms = tonumber(os.getenv("DELAY_MS") or "10")

function init(args)
  math.randomseed(os.time())
  prefix = string.format("paced-%d-%d", os.time(), math.random(1, 1000000000))
end

local template = '{"event_id":"%s-%d","type":"page_view","user_id":"u-%d","session_id":"s-%d","page":{"url":"https://shop.example/p/sku-00042","title":"Runner 42"},"country":"US","device":{"type":"mobile"}}'

request = function()
  counter = counter + 1
  local body = string.format(template, prefix, counter, counter % 5000, counter % 900)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end

-- wrk truncates the pause to whole milliseconds (2.9 becomes 2), so a fractional DELAY_MS is
-- dithered: floor or floor + 1 at random, averaging DELAY_MS.
local whole_ms = math.floor(delay_ms)
local fraction = delay_ms - whole_ms

delay = function()
  if math.random() < fraction then
    return whole_ms + 1
  end
  return whole_ms
end

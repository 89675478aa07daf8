-- One page_view per request, each with a unique event_id (so de-duplication is exercised but
-- never hit). Thread ids keep ids unique across wrk threads.
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  thread_id = id or 0
  math.randomseed(os.time() + thread_id)
  prefix = string.format("wrk-%d-%d", os.time(), math.random(1, 1000000000))
end

local template = '{"event_id":"%s-%d-%d","type":"page_view","user_id":"u-%d","session_id":"s-%d","page":{"url":"https://shop.example/p/sku-00042","title":"Runner 42"},"country":"US","device":{"type":"mobile"}}'

request = function()
  counter = counter + 1
  local body = string.format(template, prefix, thread_id, counter, counter % 5000, counter % 900)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end

-- Batches of 1,000 page_view events per request (NDJSON-free JSON array). Events carry no
-- event_id: the server assigns one, as it does for most batch importers.
local events = {}
for i = 1, 1000 do
  events[i] = string.format('{"type":"page_view","user_id":"u-%d","session_id":"s-%d","page":{"url":"https://shop.example/p/sku-%05d","title":"Product"},"country":"US","device":{"type":"desktop"}}', i % 700, i % 300, i)
end
local body = "[" .. table.concat(events, ",") .. "]"

request = function()
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end

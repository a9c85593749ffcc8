-- Which of KEYS exist: one reply for the whole batch, so a stalled server
-- costs one read timeout, not one per key. The reply is one string of '1'
-- and '0', a byte per key: cheaper to send and to parse than an array.
local found = {}
for i, key in ipairs(KEYS) do
  found[i] = redis.call('EXISTS', key) == 1 and '1' or '0'
end
return table.concat(found)

-- Which of KEYS exist: one reply for the whole batch, so a stalled server
-- costs one read timeout, not one per key.
local found = {}
for i, key in ipairs(KEYS) do
  found[i] = redis.call('EXISTS', key)
end
return found

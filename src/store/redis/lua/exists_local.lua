#!lua flags=no-writes,allow-cross-slot-keys
-- Which of ARGV exist, on the node the call is sent to. The keys are
-- arguments, not KEYS, so they may sit in different slots of this node
-- (Redis 7): one reply per node, one read timeout if the node stalls. The
-- reply is one string of '1' and '0', a byte per key.
local found = {}
for i, key in ipairs(ARGV) do
  found[i] = redis.call('EXISTS', key) == 1 and '1' or '0'
end
return table.concat(found)

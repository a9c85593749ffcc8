-- Claim each dedupe key and append its event, atomically per event.
-- KEYS[1]   the stream; KEYS[2..] one dedupe key per event
-- ARGV[1]   MAXLEN (approximate); ARGV[2] dedupe TTL in ms; ARGV[3] F, the
--           number of fields; ARGV[4..3+F] the field names; then per event:
--           its owner token followed by its F values.
-- Returns one integer per event: 1 appended (now, or earlier by the same
-- owner, whose reply was lost), 0 duplicate (claimed by someone else).
local stream, maxlen, ttl = KEYS[1], ARGV[1], ARGV[2]
local nfields = tonumber(ARGV[3])
local out = {}
local at = 4 + nfields
for i = 2, #KEYS do
  local owner = ARGV[at]
  if redis.call('SET', KEYS[i], owner, 'NX', 'PX', ttl) then
    local args = {'XADD', stream, 'MAXLEN', '~', maxlen, '*'}
    for f = 1, nfields do
      args[#args + 1] = ARGV[3 + f]
      args[#args + 1] = ARGV[at + f]
    end
    local ok, err = pcall(redis.call, unpack(args))
    if not ok then
      -- Never leave a claim without its event: it would block it forever.
      redis.call('DEL', KEYS[i])
      -- The error as Redis gave it, so that its code (OOM, NOPERM) stays.
      local why = type(err) == 'table' and err.err or tostring(err)
      return redis.error_reply(why)
    end
    out[i - 1] = 1
  elseif redis.call('GET', KEYS[i]) == owner then
    out[i - 1] = 1
  else
    out[i - 1] = 0
  end
  at = at + 1 + nfields
end
return out

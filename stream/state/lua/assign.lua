-- Assign users to experiment variants, each at most once: the first assignment stays (sticky).
-- Keys are built in Python (stream/state/keys.py) and passed in.
--
-- ARGV[1]: JSON [[members hash, user token, counters (JSON), assigned-counts hash, variant], ...]
-- Returns, per entry, 1 when the user was assigned now, 0 when they were already.

local entries = cjson.decode(ARGV[1])
local out = {}
for i, e in ipairs(entries) do
  if redis.call('HSETNX', e[1], e[2], e[3]) == 1 then
    redis.call('HINCRBY', e[4], e[5], 1)
    out[i] = 1
  else
    out[i] = 0
  end
end
return out

-- Store what a batch's events added to the lists they name and to their users' experiment
-- counters, all or nothing: every value is computed in Python from what was loaded, and this
-- checks that each is still what was loaded (one writer per user: the owner of their partition;
-- a conflict means another writer got there first, and Python computes the batch again).
--
-- ARGV[1]: JSON {"lists": [list key, ...], "users": [[members hash, user token], ...]}
-- ARGV[2...]: for each list, then each user, in that order: the value as loaded ("" when there was
--             none), then the new value.
-- A list keeps its TTL (KEEPTTL): the join window runs from when it was served.
-- Returns 1 when stored, 0 on a conflict (nothing written).

local a = cjson.decode(ARGV[1])
local n = 2
for _, key in ipairs(a.lists) do
  local now = redis.call('GET', key)
  if (now or '') ~= ARGV[n] then return 0 end
  n = n + 2
end
for _, u in ipairs(a.users) do
  local now = redis.call('HGET', u[1], u[2])
  if (now or '') ~= ARGV[n] then return 0 end
  n = n + 2
end
n = 3
for _, key in ipairs(a.lists) do
  redis.call('SET', key, ARGV[n], 'KEEPTTL')
  n = n + 2
end
for _, u in ipairs(a.users) do
  redis.call('HSET', u[1], u[2], ARGV[n])
  n = n + 2
end
return 1

-- What a batch needs, in one call. Keys are built in Python (stream/state/keys.py) and passed in.
--
-- ARGV[1]: JSON {
--   "claims":  [dedupe key, ...]                          -> "1"/"0" per key: applied before
--   "users":   [[row key, state key, seen key, profile key, behaviour key], ...]
--   "row_fields", "state_fields", "behaviour_fields": field names to read (HMGET)
--   "layers":  [re-ranker layer key, ...]                 -> HGETALL each
--   "guards":  [guard key, ...]                           -> HGETALL each
--   "poprefs": [popularity reference key, ...]            -> GET each
--   "clusterer": [] or [clusterer key, warm-up key]       -> HGETALL, and LRANGE of the warm-up
-- }
-- Returns {claims, users, layers, guards, poprefs, clusterer}; per user
-- {row values, state values, seen (member, score, ...), profile's _segment, behaviour values}.

local function load_claims(keys)
  local out = {}
  for n, key in ipairs(keys) do
    out[n] = redis.call('EXISTS', key) == 1 and '1' or '0'
  end
  return table.concat(out)
end

local function load_user(keys, a)
  return {
    redis.call('HMGET', keys[1], unpack(a.row_fields)),
    redis.call('HMGET', keys[2], unpack(a.state_fields)),
    redis.call('ZRANGE', keys[3], 0, -1, 'WITHSCORES'),
    redis.call('HGET', keys[4], '_segment'),
    #a.behaviour_fields > 0 and redis.call('HMGET', keys[5], unpack(a.behaviour_fields)) or {},
  }
end

local function each(keys, command)
  local out = {}
  for n, key in ipairs(keys) do
    out[n] = redis.call(command, key)
  end
  return out
end

local a = cjson.decode(ARGV[1])
local users = {}
for n, keys in ipairs(a.users) do
  users[n] = load_user(keys, a)
end
local clusterer = {}
if #a.clusterer == 2 then
  clusterer = {redis.call('HGETALL', a.clusterer[1]), redis.call('LRANGE', a.clusterer[2], 0, -1)}
end
return {load_claims(a.claims), users, each(a.layers, 'HGETALL'), each(a.guards, 'HGETALL'),
        each(a.poprefs, 'GET'), clusterer}

-- What a batch needs, in one call. Keys are built in Python (stream/state/keys.py) and passed in.
--
-- ARGV[1]: JSON {
--   "offsets": applied-offsets hash key, "marks": [field, ...]   -> HMGET: each (topic, partition)'s
--                                                                   last applied offset
--   "buckets": [event-id set key, ...], "ids": [event id, ...]   -> "1"/"0" per id: in any of the sets
--   "users":   [user state key, ...], "profiles": [profile key, ...]   (one of each per user)
--                                                                -> GET each state, HGET each _segment
--   "layers":  [re-ranker layer key, ...]                        -> HGETALL each
--   "guards":  [guard key, ...]                                  -> HGETALL each
--   "poprefs": [popularity reference key, ...]                   -> GET each
--   "clusterer": [] or [clusterer key, warm-up key]              -> HGETALL, and LRANGE of the warm-up
-- }
-- Returns {marks, claimed ids, states, profile segments, layers, guards, poprefs, clusterer}.

local function in_sets(buckets, ids)
  local out = {}
  for n = 1, #ids do out[n] = '0' end
  for _, key in ipairs(buckets) do
    local i = 1
    while i <= #ids do  -- unpack() has a stack limit: long lists go in chunks
      local j = math.min(i + 999, #ids)
      local found = redis.call('SMISMEMBER', key, unpack(ids, i, j))
      for x = 1, #found do
        if found[x] == 1 then out[i + x - 1] = '1' end
      end
      i = j + 1
    end
  end
  return table.concat(out)
end

local function each(keys, command, ...)
  local out = {}
  for n, key in ipairs(keys) do
    out[n] = redis.call(command, key, ...)
  end
  return out
end

local a = cjson.decode(ARGV[1])
local marks = {}
if #a.marks > 0 then marks = redis.call('HMGET', a.offsets, unpack(a.marks)) end
local clusterer = {}
if #a.clusterer == 2 then
  clusterer = {redis.call('HGETALL', a.clusterer[1]), redis.call('LRANGE', a.clusterer[2], 0, -1)}
end
return {marks, in_sets(a.buckets, a.ids), each(a.users, 'GET'), each(a.profiles, 'HGET', '_segment'),
        each(a.layers, 'HGETALL'), each(a.guards, 'HGETALL'), each(a.poprefs, 'GET'), clusterer}

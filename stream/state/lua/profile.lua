-- Store a user's profile unless the user was erased at or after its ts, in one step.
-- Keys are built in Python (stream/state/keys.py) and passed in.
--
-- ARGV[1]: JSON {
--   "marker":   the user's erasure marker key
--   "profile":  the profile hash key (replaced whole)
--   "segments": the set of profile segment names
--   "stats":    the counters hash (erased_dropped_total)
--   "ts":       the profile's event time (text)
--   "segment":  the profile's segment
--   "fields":   [field, value, ...]   the hash's new content
-- }
-- Returns {"stored", the previous _segment or false}, or {"erased"} (nothing written but the count).

local a = cjson.decode(ARGV[1])
local erased = redis.call('GET', a.marker)
if erased and tonumber(erased) >= tonumber(a.ts) then
  redis.call('HINCRBY', a.stats, 'erased_dropped_total', 1)
  return {'erased'}
end
local previous = redis.call('HGET', a.profile, '_segment')
redis.call('DEL', a.profile)
redis.call('HSET', a.profile, unpack(a.fields))
redis.call('SADD', a.segments, a.segment)
return {'stored', previous}

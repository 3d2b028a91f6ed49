-- Erase a user, all or nothing: delete every key named by them, keep a marker with the erasure's ts.
-- Keys are built in Python (stream/state/keys.py: Keys.per_user, Keys.erased) and passed in.
--
-- ARGV[1]: JSON {
--   "marker": the user's erasure marker key ({p}:erased:<token>, a keyed hash of the user id)
--   "ts":     the erasure's event time (text, Python's repr of a float)
--   "ttl":    seconds the marker is kept
--   "keys":   [key, ...]   the user's keys, deleted
--   "stats":  the counters hash (erasures_total)
-- }
-- Returns {"erased", ts, found (1: some key existed)}, or {"already_erased", the marker's ts, 0} when a
-- marker at or after ts is there: a repeated request. Then nothing is deleted: whatever the user has
-- now came from events after that erasure (the engine drops the earlier ones while the marker lives).

local a = cjson.decode(ARGV[1])
local before = redis.call('GET', a.marker)
if before and tonumber(before) >= tonumber(a.ts) then
  return {'already_erased', before, 0}
end
local found = redis.call('DEL', unpack(a.keys))
redis.call('SET', a.marker, a.ts, 'EX', a.ttl)
redis.call('HINCRBY', a.stats, 'erasures_total', 1)
return {'erased', a.ts, found > 0 and 1 or 0}

-- Remember the lists just pushed, for users who still have a record: a user erased while their list
-- was being made gets no list key back (the list would name them).
--
-- ARGV[1]: JSON [[record key, list key], ...]
-- ARGV[2...]: the lists, in the same order
-- Returns the number of lists stored.

local pairs_ = cjson.decode(ARGV[1])
local stored = 0
for i, pair in ipairs(pairs_) do
  if redis.call('EXISTS', pair[1]) == 1 then
    redis.call('SET', pair[2], ARGV[i + 1])
    stored = stored + 1
  end
end
return stored

-- An item owner's commit: the update ids it applied and the rows they changed, all or nothing.
-- No model logic: Python built every value.
--
-- ARGV (flat, no JSON: rows carry binary values):
--   [1] ttl of the applied-id keys, [2] n: how many applied-id keys follow, [3 .. 2+n] those keys
--   (each must not exist yet: an update applied meanwhile refuses the commit),
--   then the owner's item set key, m: how many rows follow, and per row 7 values:
--   hash key, item id, vec (f4 bytes), dim, bias, updated_at, row (item-row-v3 bytes)
-- Writes per row HSET key vec dim bias version updated_at row (version: the model version, passed
-- once after the rows), and SADD of the item ids to the owner's set.
-- Returns "ok", or {"conflict", what}.

local function check(first, last)
  for i = first, last do
    if redis.call('EXISTS', ARGV[i]) == 1 then return 'claimed: ' .. ARGV[i] end
  end
  return nil
end

local ttl, n = tonumber(ARGV[1]), tonumber(ARGV[2])
local problem = check(3, 2 + n)
if problem then return {'conflict', problem} end
for i = 3, 2 + n do
  redis.call('SET', ARGV[i], '1', 'EX', ttl)
end
local at = 3 + n
local owned, m = ARGV[at], tonumber(ARGV[at + 1])
local version = ARGV[at + 2 + 7 * m]
local items = {}
for r = 0, m - 1 do
  local p = at + 2 + 7 * r
  redis.call('HSET', ARGV[p], 'vec', ARGV[p + 2], 'dim', ARGV[p + 3], 'bias', ARGV[p + 4], 'version', version,
             'updated_at', ARGV[p + 5], 'row', ARGV[p + 6])
  items[#items + 1] = ARGV[p + 1]
  if #items == 1000 then
    redis.call('SADD', owned, unpack(items))
    items = {}
  end
end
if #items > 0 then redis.call('SADD', owned, unpack(items)) end
return 'ok'

-- An item owner's commit: its partition's applied offset, the update ids it applied and the rows
-- they changed, all or nothing. No model logic: Python built every value.
--
-- ARGV (flat, no JSON: rows carry binary values):
--   [1] the owners' offsets hash key, [2] its field (the item-updates partition),
--   [3] the offset as loaded ('' : none was stored; '-' : no offset check, none written),
--   [4] the new offset (written when [3] is not '-'),
--   [5] the id set of the current time bucket (written), [6] its expiry in seconds,
--   [7] b: how many id sets follow (every bucket of the window, the current one first), [8 .. 7+b],
--   then n: how many update ids follow, and those ids (none may be in any of the b sets: an update
--   applied meanwhile refuses the commit),
--   then the owner's item set key, m: how many rows follow, and per row 7 values:
--   hash key, item id, vec (f4 bytes), dim, bias, updated_at, row (item-row-v3 bytes)
--   and, last, the model version.
-- Writes HSET of the offset, SADD of the ids to the current bucket (and its EXPIRE), per row
-- HSET key vec dim bias version updated_at row, and SADD of the item ids to the owner's set.
-- Returns "ok", or {"conflict", what}.

local function offset_moved(key, field, expected)
  if expected == '-' then return nil end
  local got = redis.call('HGET', key, field)
  if (got or '') ~= expected then
    return 'partition ' .. field .. ' applied meanwhile (offset ' .. tostring(got) .. ')'
  end
  return nil
end

local function claimed(sets, first, last)
  for _, key in ipairs(sets) do
    local i = first
    while i <= last do  -- unpack() has a stack limit: long lists go in chunks
      local j = math.min(i + 999, last)
      for x, found in ipairs(redis.call('SMISMEMBER', key, unpack(ARGV, i, j))) do
        if found == 1 then return 'claimed: ' .. ARGV[i + x - 1] end
      end
      i = j + 1
    end
  end
  return nil
end

local offsets, field, before, after = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local current, expiry, b = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local sets = {}
for i = 1, b do sets[i] = ARGV[7 + i] end
local n = tonumber(ARGV[8 + b])
local first = 9 + b
local problem = offset_moved(offsets, field, before) or claimed(sets, first, first + n - 1)
if problem then return {'conflict', problem} end
if before ~= '-' then redis.call('HSET', offsets, field, after) end
local i = first
while i <= first + n - 1 do
  local j = math.min(i + 999, first + n - 1)
  redis.call('SADD', current, unpack(ARGV, i, j))
  i = j + 1
end
if n > 0 then redis.call('EXPIRE', current, expiry) end
local at = first + n
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

-- Items' scores in segments' popularity sets, in one call.
-- ARGV[1]: JSON [[zset key, [member, ...]], ...]
-- Returns, per key, one score per member ('0' when absent).

local function scores(key, members)
  local out = {}
  for i = 1, #members, 1000 do
    local part = redis.call('ZMSCORE', key, unpack(members, i, math.min(i + 999, #members)))
    for j = 1, #part do out[#out + 1] = part[j] or '0' end
  end
  return out
end

local out = {}
for n, s in ipairs(cjson.decode(ARGV[1])) do
  out[n] = scores(s[1], s[2])
end
return out

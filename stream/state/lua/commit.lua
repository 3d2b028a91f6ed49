-- Apply a batch's effects, all or nothing: check what they were computed from, then write.
-- No model logic lives here: Python computed every value; this script only checks and stores.
--
-- ARGV[1]: JSON {
--   "absent": [key, ...]        each must not exist (item update ids not applied yet); then set to "1"
--   "ttl":    seconds           expiry of those keys
--   "expect": [[key, field, value or false], ...]   HGET key field must equal value (false: absent)
--   "expect_str": [[key, value or false], ...]      GET key must equal value (false: absent)
--   "not_in": [[set key, ...], [member, ...]]       no member may be in any of the sets (event ids
--                                                    not applied yet)
--   "ops":    [[op, key, arg, ...], ...]            the writes, in order (see apply_op)
-- }
-- ARGV[2...]: binary values (packed vectors, payloads); an op argument {"b": n} stands for ARGV[n].
-- Returns "ok", or {"conflict", what} when a check failed (then nothing was written).

local function value(v)
  if type(v) == 'table' then return ARGV[v.b] end
  return v
end

local function call_chunked(command, key, args, start)
  -- unpack() has a stack limit: long argument lists go in chunks
  local n = #args
  local i = start
  while i <= n do
    local j = math.min(i + 999, n)
    local chunk = {}
    for x = i, j do chunk[#chunk + 1] = value(args[x]) end
    redis.call(command, key, unpack(chunk))
    i = j + 1
  end
end

local function scale(key, factor)
  local all = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  for i = 1, #all, 2 do
    redis.call('ZADD', key, tonumber(all[i + 1]) * factor, all[i])
  end
end

local function apply_op(op)
  local name, key = op[1], op[2]
  if name == 'hset' or name == 'zadd' or name == 'zrem' or name == 'sadd' or name == 'pfadd'
      or name == 'rpush' or name == 'hdel' then
    call_chunked(string.upper(name), key, op, 3)
  elseif name == 'hincrbyfloat' then
    for i = 3, #op, 2 do redis.call('HINCRBYFLOAT', key, op[i], op[i + 1]) end
  elseif name == 'hincrby' then
    for i = 3, #op, 2 do redis.call('HINCRBY', key, op[i], op[i + 1]) end
  elseif name == 'zincrby' then
    for i = 3, #op, 2 do redis.call('ZINCRBY', key, op[i], op[i + 1]) end
  elseif name == 'zscale' then
    scale(key, tonumber(op[3]))
  elseif name == 'set' then
    redis.call('SET', key, value(op[3]))
  elseif name == 'expire' then
    redis.call('EXPIRE', key, op[3])
  elseif name == 'del' then
    redis.call('DEL', key)
  else
    error('commit.lua: unknown op ' .. tostring(name))
  end
end

local function check(a)
  for _, key in ipairs(a.absent) do
    if redis.call('EXISTS', key) == 1 then return 'claimed: ' .. key end
  end
  for _, e in ipairs(a.expect) do
    local got = redis.call('HGET', e[1], e[2])
    if got ~= e[3] then return 'changed: ' .. e[1] .. ' ' .. e[2] end
  end
  for _, e in ipairs(a.expect_str) do
    local got = redis.call('GET', e[1])
    if got ~= e[2] then return 'changed: ' .. e[1] end
  end
  if a.not_in and #a.not_in == 2 then
    local ids = a.not_in[2]
    for _, key in ipairs(a.not_in[1]) do
      local i = 1
      while i <= #ids do
        local j = math.min(i + 999, #ids)
        for x, found in ipairs(redis.call('SMISMEMBER', key, unpack(ids, i, j))) do
          if found == 1 then return 'claimed: ' .. ids[i + x - 1] end
        end
        i = j + 1
      end
    end
  end
  return nil
end

local a = cjson.decode(ARGV[1])
local problem = check(a)
if problem then return {'conflict', problem} end
for _, key in ipairs(a.absent) do
  redis.call('SET', key, '1', 'EX', a.ttl)
end
for _, op in ipairs(a.ops) do
  apply_op(op)
end
return 'ok'

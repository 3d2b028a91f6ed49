-- Served lists' records, each kept for the attribution window, in one call.
--
-- ARGV[1]: seconds to keep them
-- ARGV[2...]: pairs of record key, record
-- Returns the number of records stored.

local ttl = ARGV[1]
local n = 0
for i = 2, #ARGV, 2 do
  redis.call('SET', ARGV[i], ARGV[i + 1], 'EX', ttl)
  n = n + 1
end
return n

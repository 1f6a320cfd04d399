-- Counts a cache's entries of the current generation (leases left out). KEYS[1] the generation;
-- ARGV[1] the key names' stem up to the generation. A scan: for operators, not for a call's path.
local generation = redis.call('GET', KEYS[1]) or '0'
local pattern = ARGV[1] .. generation .. ':v:*'
local cursor, count = '0', 0
repeat
  local page = redis.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', 1000)
  cursor = page[1]
  count = count + #page[2]
until cursor == '0'
return count

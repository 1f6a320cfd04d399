-- Stores a value computed under a lease, if the lease still holds, and ends the lease.
-- KEYS[1] the value, KEYS[2] the key's lease; ARGV the value, its ttl in ms (0: none), the lease's token.
-- A lease that lapsed, was released, or was revoked by an invalidation (which deletes it, or raises the generation
-- that both key names carry) no longer matches, and nothing is stored.
if redis.call('GET', KEYS[2]) ~= ARGV[3] then
  return 0
end
redis.call('DEL', KEYS[2])
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1

-- Ends a lease without storing anything, if it is still the holder's. KEYS[1] the lease; ARGV[1] its token.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0

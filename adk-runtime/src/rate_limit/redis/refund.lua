-- Gives back `cost` units a bucket reserved ahead for a call that never started: `Algorithm::refund`, mirrored.
--
-- KEYS[1]  the key's state, KEYS[2] the limiter's generation (see decide.lua: a state of an older generation, from
--          before a reset, is left as it is)
-- ARGV     strategy (0 GCRA, 1 token bucket, 2 leaky bucket; windows reserve nothing), interval (ns), cost
local strategy = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])

local stored = redis.call('GET', KEYS[1])
if not stored then
  return 0
end
local fields = {}
for field in string.gmatch(stored, '%S+') do
  fields[#fields + 1] = field
end
if fields[1] ~= (redis.call('GET', KEYS[2]) or '0') then
  return 0
end

local function int(x)
  return string.format('%.0f', x)
end

local value
if strategy == 0 or strategy == 2 then
  local total_ns = tonumber(fields[3]) - cost * interval
  local carry = math.floor(total_ns / 1000)
  if total_ns - carry * 1000 < 0 then
    carry = carry - 1
  elseif total_ns - carry * 1000 >= 1000 then
    carry = carry + 1
  end
  local us = tonumber(fields[2]) + carry
  if us < 0 then
    value = '0 0'
  else
    value = int(us) .. ' ' .. int(total_ns - carry * 1000)
  end
elseif strategy == 1 then
  value = int(math.max(tonumber(fields[2]) - cost, 0))
else
  return 0
end
redis.call('SET', KEYS[1], fields[1] .. ' ' .. value, 'KEEPTTL')
return 1

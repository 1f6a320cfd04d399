-- One rate limit decision, atomically, on the server's clock: the transitions of `algorithm.rs`, mirrored.
--
-- KEYS[1]  the key's state: "<generation> <cell...>", see below
-- KEYS[2]  the limiter's generation, raised by a reset (a state of another generation reads as a key never seen)
-- ARGV     strategy (0 GCRA, 1 token bucket, 2 leaky bucket, 3 fixed window, 4 sliding window), interval (ns),
--          limit, window (ns), cost (1 ..= limit), patience (ns; -1: now or never), ttl floor (ms),
--          and, for a clock other than the server's, now as microseconds since the Unix epoch and nanoseconds more
-- Returns  {0, wait} admitted, {1, retry_after, remaining, reset} limited (nanoseconds)
--
-- Lua numbers are doubles: every integer here stays below 2^53. Absolute times are kept as microseconds since the
-- Unix epoch (below 2^53 for centuries) plus nanoseconds; only differences from now are taken in nanoseconds.
-- Cells: GCRA and leaky bucket "<gen> <tat us> <tat ns>"; token bucket "<gen> <tat ticks>"; fixed window
-- "<gen> <window id> <used>"; sliding window "<gen> <id even> <used even> <id odd> <used odd>" (cells by parity).

local strategy = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
local cost = tonumber(ARGV[5])
local patience = tonumber(ARGV[6])
local ttl_floor = tonumber(ARGV[7])

local now_us, now_ns
if ARGV[8] and ARGV[8] ~= '' then
  now_us, now_ns = tonumber(ARGV[8]), tonumber(ARGV[9])
else
  local time = redis.call('TIME')
  now_us, now_ns = tonumber(time[1]) * 1000000 + tonumber(time[2]), 0
end

-- Exact floor division and remainder of integers below 2^53 (the quotient of two doubles may round to the next
-- integer).
local function divmod(a, b)
  local q = math.floor(a / b)
  local r = a - q * b
  if r < 0 then
    q, r = q - 1, r + b
  elseif r >= b then
    q, r = q + 1, r - b
  end
  return q, r
end

-- now / w and now % w, for now = now_us * 1000 + now_ns (above 2^53) and a divisor w in nanoseconds.
local function divmod_now(w)
  if w % 1000 == 0 then
    local q, r = divmod(now_us, w / 1000)
    return q, r * 1000 + now_ns
  end
  local q1, r1 = divmod(now_us, w)
  local q2, r2 = divmod(r1 * 1000 + now_ns, w)
  return q1 * 1000 + q2, r2
end

-- floor(a * b / c) and a * b % c for a below 2^32 and b <= c below 2^52, where a * b may pass 2^53: bit by bit.
local function muldiv(a, b, c)
  if a * b < 9007199254740992 then
    return divmod(a * b, c)
  end
  local q, r = 0, 0
  local bit = 2147483648
  while bit >= 1 do
    q, r = q * 2, r * 2
    if r >= c then
      q, r = q + 1, r - c
    end
    if a >= bit then
      a = a - bit
      r = r + b
      if r >= c then
        q, r = q + 1, r - c
      end
    end
    bit = bit / 2
  end
  return q, r
end

local generation = redis.call('GET', KEYS[2]) or '0'
local fields = {}
local stored = redis.call('GET', KEYS[1])
if stored then
  for field in string.gmatch(stored, '%S+') do
    fields[#fields + 1] = field
  end
  if fields[1] ~= generation then
    fields = {}
  end
end
local function field(i)
  return tonumber(fields[i + 1] or '0')
end

local function store(value, ttl_ms)
  redis.call('SET', KEYS[1], generation .. ' ' .. value, 'PX', math.max(ttl_floor, math.ceil(ttl_ms)))
end

-- Integers as digits: `tostring` would write large ones in exponent notation.
local function int(x)
  return string.format('%.0f', x)
end

local function max0(x)
  if x < 0 then
    return 0
  end
  return x
end

if strategy == 0 or strategy == 2 then
  local tolerance = limit * interval
  local turn_in = 0
  if stored and #fields > 0 then
    turn_in = max0((field(1) - now_us) * 1000 + (field(2) - now_ns))
  end
  local new_ahead = turn_in + cost * interval
  local conforms_in = max0(new_ahead - tolerance)
  local wait, retry_after = nil, conforms_in
  if strategy == 2 then
    if patience < 0 then
      if turn_in == 0 then
        wait = 0
      end
      retry_after = turn_in
    elseif conforms_in == 0 or turn_in <= patience then
      wait = turn_in
    end
  else
    if conforms_in <= math.max(patience, 0) then
      wait = conforms_in
    end
  end
  if wait then
    local carry, ns = divmod(now_ns + new_ahead, 1000)
    store(int(now_us + carry) .. ' ' .. int(ns), new_ahead / 1000000)
    return {0, wait}
  end
  local remaining = math.floor(max0(tolerance - turn_in) / interval)
  return {1, retry_after, remaining, turn_in}
elseif strategy == 1 then
  local tick, into_tick = divmod_now(interval)
  local base = math.max(field(1), tick)
  local new_tat = base + cost
  local conforming_tick = max0(new_tat - limit)
  local conforms_in = 0
  if conforming_tick > tick then
    conforms_in = max0((conforming_tick - tick) * interval - into_tick)
  end
  if conforms_in <= math.max(patience, 0) then
    store(int(new_tat), ((new_tat - tick) * interval - into_tick) / 1000000)
    return {0, conforms_in}
  end
  local remaining = max0(limit - (base - tick))
  local reset = max0((base - tick) * interval - into_tick)
  return {1, conforms_in, remaining, reset}
elseif strategy == 3 then
  local index, elapsed = divmod_now(window)
  local id = index + 1
  local current = 0
  if field(1) == id then
    current = field(2)
  end
  if current + cost <= limit then
    store(int(id) .. ' ' .. int(current + cost), 0)
    return {0, 0}
  end
  local next_window = window - elapsed
  return {1, next_window, limit - current, next_window}
else
  local index, elapsed = divmod_now(window)
  local parity = index % 2
  local mine, theirs = 1 + 2 * parity, 3 - 2 * parity
  local current, previous = 0, 0
  if field(mine) == index + 1 then
    current = field(mine + 1)
  end
  if index > 0 and field(theirs) == index then
    previous = field(theirs + 1)
  end
  local weighted = muldiv(previous, window - elapsed, window)
  local spent = weighted + current
  if spent + cost <= limit then
    local cells = {field(1), field(2), field(3), field(4)}
    cells[mine], cells[mine + 1] = index + 1, current + cost
    store(int(cells[1]) .. ' ' .. int(cells[2]) .. ' ' .. int(cells[3]) .. ' ' .. int(cells[4]), 0)
    return {0, 0}
  end
  -- The first elapsed time at which the weighted count of `units` leaves `room`.
  local function until_room(units, room)
    if units <= room then
      return 0
    end
    local q, r = muldiv(room + 1, window, units)
    if r == 0 then
      q = q - 1
    end
    return window - q
  end
  local admitted_in
  if current + cost <= limit then
    admitted_in = until_room(previous, limit - cost - current) - elapsed
  else
    admitted_in = window + until_room(current, limit - cost) - elapsed
  end
  local reset = window - elapsed
  if current > 0 then
    reset = 2 * window - elapsed
  end
  return {1, max0(admitted_in), max0(limit - spent), reset}
end

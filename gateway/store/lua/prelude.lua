-- Shared by every Tollgate script (prepended at load time; Redis scripts cannot import).
-- Integers travel as decimal strings; Lua numbers are doubles, exact up to 2^53
-- (9e15 micro-dollars = $9e9; the client refuses larger amounts).
--
-- Calling convention (fewer arguments and one reply line keep the client's work small):
-- ARGV[1] is the request id (free text), ARGV[2] all other arguments joined by ',', ARGV[3] an
-- optional free-text payload. `args()` returns them as one list: A[1] = ARGV[1], A[2..] = the
-- comma-separated fields, as strings. `reply(list)` joins integers the same way.

local function args()
  local a = {ARGV[1]}
  for field in string.gmatch(ARGV[2] or '', '[^,]+') do
    a[#a + 1] = field
  end
  return a
end

local function reply(list)
  local parts = {}
  for i, v in ipairs(list) do
    parts[i] = string.format('%d', v)  -- never tostring(): it turns 1e14 into '1e+14'
  end
  return table.concat(parts, ',')
end

-- Release the budget holds whose lease ran out by `now_ms` (at most `limit` per call, so one
-- call's work stays bounded; the rest go on later calls and only ever over-count meanwhile).
local function purge_budget(hkey, zkey, now_ms, limit)
  local ids = redis.call('ZRANGE', zkey, '-inf', now_ms, 'BYSCORE', 'LIMIT', 0, limit)
  if #ids == 0 then
    return
  end
  local freed = 0
  for _, id in ipairs(ids) do
    local held = redis.call('HGET', hkey, 'r:' .. id)
    if held then
      freed = freed + tonumber(held)
      redis.call('HDEL', hkey, 'r:' .. id)
    end
  end
  redis.call('ZREM', zkey, unpack(ids))
  if freed ~= 0 then
    redis.call('HINCRBY', hkey, 'reserved', -freed)
  end
end

-- Concurrency: a sorted set of request ids scored by lease end; lapsed ones drop out.
local function in_flight(ckey, now_ms)
  redis.call('ZREMRANGEBYSCORE', ckey, '-inf', now_ms)
  return redis.call('ZCARD', ckey)
end

local function budget_figures(hkey)
  local v = redis.call('HMGET', hkey, 'spent', 'reserved')
  return tonumber(v[1]) or 0, tonumber(v[2]) or 0
end

local function window_figures(wkey)
  local v = redis.call('HMGET', wkey, 'n', 't')
  return tonumber(v[1]) or 0, tonumber(v[2]) or 0
end

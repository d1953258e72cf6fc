-- reserve: check every budget and rate limit of one request; hold them all or change nothing.
--
-- KEYS[1]                 request record (hash: w = window start, t = tokens held;
--                         s = how it ended, once settled or released)
-- KEYS[2i], KEYS[2i+1]    budget i: counters hash (spent, reserved, r:<id> = held amount)
--                         and leases sorted set (id -> lease end ms)
-- KEYS[b+2j-1], KEYS[b+2j] rate j (b = 1 + 2*nb): window hash (n, t), in-flight sorted set
-- A     1 request id, 2 now ms, 3 lease end ms, 4 amount, 5 tokens, 6 window start,
--       7 window ttl s, 8 record ttl s, 9 in-flight ttl s, 10 purge limit, 11 nb, 12 nr,
--       then per budget: limit, ttl s (0 = keep);
--       then per rate: rpm, tpm, max concurrent (-1 = no limit)
-- Returns, comma-joined: admitted, reason, failed index, replayed, per budget: spent, reserved,
--          per rate: requests, tokens, in flight
-- reason: 0 none, 1 budget, 2 requests/min, 3 tokens/min, 4 concurrency

local A = args()
local rid = A[1]
local now_ms = tonumber(A[2])
local lease_end = tonumber(A[3])
local amount = tonumber(A[4])
local tokens = tonumber(A[5])
local window = A[6]
local window_ttl = tonumber(A[7])
local record_ttl = tonumber(A[8])
local flight_ttl = tonumber(A[9])
local purge_limit = tonumber(A[10])
local nb = tonumber(A[11])
local nr = tonumber(A[12])
local rate_base = 1 + 2 * nb
local rate_args = 13 + 2 * nb

-- A retried reserve (the reply was lost) must not hold twice; nor may a reserve for a
-- request id that has already ended.
local replayed = redis.call('EXISTS', KEYS[1]) == 1

local reason, failed = 0, 0
local spent, reserved = {}, {}
for i = 1, nb do
  local hkey, zkey = KEYS[2 * i], KEYS[2 * i + 1]
  purge_budget(hkey, zkey, now_ms, purge_limit)
  spent[i], reserved[i] = budget_figures(hkey)
  local limit = tonumber(A[11 + 2 * i])
  if reason == 0 and not replayed and spent[i] + reserved[i] + amount > limit then
    reason, failed = 1, i
  end
end

local requests, used, flights = {}, {}, {}
for j = 1, nr do
  local wkey, ckey = KEYS[rate_base + 2 * j - 1], KEYS[rate_base + 2 * j]
  local rpm = tonumber(A[rate_args + 3 * (j - 1)])
  local tpm = tonumber(A[rate_args + 3 * (j - 1) + 1])
  local maxc = tonumber(A[rate_args + 3 * (j - 1) + 2])
  requests[j], used[j] = window_figures(wkey)
  flights[j] = 0
  if maxc >= 0 then
    flights[j] = in_flight(ckey, now_ms)
  end
  if reason == 0 and not replayed then
    if rpm >= 0 and requests[j] >= rpm then
      reason, failed = 2, j
    elseif tpm >= 0 and used[j] + tokens > tpm then
      reason, failed = 3, j
    elseif maxc >= 0 and flights[j] >= maxc then
      reason, failed = 4, j
    end
  end
end

if reason == 0 and not replayed then
  for i = 1, nb do
    local hkey, zkey = KEYS[2 * i], KEYS[2 * i + 1]
    redis.call('HSET', hkey, 'r:' .. rid, amount)
    redis.call('HINCRBY', hkey, 'reserved', amount)
    redis.call('ZADD', zkey, lease_end, rid)
    local ttl = tonumber(A[12 + 2 * i])
    if ttl > 0 then
      redis.call('EXPIRE', hkey, ttl)
      redis.call('EXPIRE', zkey, ttl)
    end
    reserved[i] = reserved[i] + amount
  end
  for j = 1, nr do
    local wkey, ckey = KEYS[rate_base + 2 * j - 1], KEYS[rate_base + 2 * j]
    redis.call('HINCRBY', wkey, 'n', 1)
    redis.call('HINCRBY', wkey, 't', tokens)
    redis.call('EXPIRE', wkey, window_ttl)
    requests[j] = requests[j] + 1
    used[j] = used[j] + tokens
    if tonumber(A[rate_args + 3 * (j - 1) + 2]) >= 0 then
      redis.call('ZADD', ckey, lease_end, rid)
      redis.call('EXPIRE', ckey, flight_ttl)
      flights[j] = flights[j] + 1
    end
  end
  redis.call('HSET', KEYS[1], 'w', window, 't', tokens)
  redis.call('EXPIRE', KEYS[1], record_ttl)
end

local out = {reason == 0 and 1 or 0, reason, failed, replayed and 1 or 0}
for i = 1, nb do
  out[#out + 1] = spent[i]
  out[#out + 1] = reserved[i]
end
for j = 1, nr do
  out[#out + 1] = requests[j]
  out[#out + 1] = used[j]
  out[#out + 1] = flights[j]
end
return reply(out)

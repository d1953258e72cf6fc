-- settle (and release): end a request exactly once.
--
-- KEYS[1]                  request record (hash: w, t while held; s = how it ended, after)
-- KEYS[2]                  ledger sorted set (member = record JSON, score = time in us)
-- KEYS[1+2i], KEYS[2+2i]   budget i: counters hash, leases sorted set
-- KEYS[b+2j-1], KEYS[b+2j] rate j (b = 2 + 2*nb): current window hash, in-flight sorted set
-- A     1 request id, 2 actual micros, 3 actual tokens, 4 current window start,
--       5 window ttl s, 6 dedupe ttl s, 7 marker ('settled' | 'released'), 8 unused,
--       9 ledger score, 10 oldest score kept (-1 = any), 11 max records kept (-1 = any),
--       12 nb, 13 nr, then per budget: ttl s (0 = keep)
-- ARGV[3] the ledger record (JSON; '' = none)
-- Returns 1 when applied, 0 when this request id was already settled or released.

local A = args()
local rid = A[1]
local record = redis.call('HMGET', KEYS[1], 's', 'w', 't')
if record[1] then
  return 0
end
local actual = tonumber(A[2])
local actual_tokens = tonumber(A[3])
local window = A[4]
local window_ttl = tonumber(A[5])
local nb = tonumber(A[12])
local nr = tonumber(A[13])
local rate_base = 2 + 2 * nb

for i = 1, nb do
  local hkey, zkey = KEYS[1 + 2 * i], KEYS[2 + 2 * i]
  -- Release exactly what this store holds for the request (nothing if the lease lapsed).
  local held = redis.call('HGET', hkey, 'r:' .. rid)
  if held then
    redis.call('HDEL', hkey, 'r:' .. rid)
    redis.call('HINCRBY', hkey, 'reserved', -tonumber(held))
  end
  redis.call('ZREM', zkey, rid)
  if actual > 0 then
    redis.call('HINCRBY', hkey, 'spent', actual)
  end
  local ttl = tonumber(A[13 + i])
  if ttl > 0 then
    redis.call('EXPIRE', hkey, ttl)
  end
end

-- Token windows: correct the window the hold was counted in while it is current; later,
-- add only what was not held; with no hold on record, everything is new.
local delta = actual_tokens
if record[2] then
  local held_tokens = tonumber(record[3])
  if record[2] == window then
    delta = actual_tokens - held_tokens
  else
    delta = math.max(0, actual_tokens - held_tokens)
  end
  redis.call('DEL', KEYS[1])
end
-- The record becomes the dedupe marker: any later settle, release or reserve is a no-op.
redis.call('HSET', KEYS[1], 's', A[7])
redis.call('EXPIRE', KEYS[1], A[6])

for j = 1, nr do
  local wkey, ckey = KEYS[rate_base + 2 * j - 1], KEYS[rate_base + 2 * j]
  if delta ~= 0 then
    if redis.call('HINCRBY', wkey, 't', delta) < 0 then
      redis.call('HSET', wkey, 't', 0)
    end
    redis.call('EXPIRE', wkey, window_ttl)
  end
  redis.call('ZREM', ckey, rid)
end

if ARGV[3] ~= '' then
  local ledger = KEYS[2]
  redis.call('ZADD', ledger, A[9], ARGV[3])
  local oldest = tonumber(A[10])
  if oldest >= 0 then
    redis.call('ZREMRANGEBYSCORE', ledger, '-inf', '(' .. A[10])
  end
  local keep = tonumber(A[11])
  if keep >= 0 then
    local count = redis.call('ZCARD', ledger)
    if count > keep then
      redis.call('ZREMRANGEBYRANK', ledger, 0, count - keep - 1)
    end
  end
end
return 1

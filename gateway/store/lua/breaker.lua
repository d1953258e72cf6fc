-- breaker: circuit-breaker records, a line-for-line mirror of store/breaker.py (read that
-- module's docstring for the state machine; the same tests run against both).
--
-- One hash per breaker key: s state (0 closed, 1 half-open, 2 open), ou open until (ms),
-- p probes, pu probe round until (ms), c consecutive failures, ws window start (ms),
-- ok / f this window's successes / failures, pok / pf the previous window's.
--
-- A[1] is the operation:
--   'state'    KEYS = every key to read; no fields.
--              Returns per key: s, ou, p, pu
--   'report'   KEYS[1]; A[2..] now ms, consecutive failures, failure ratio, minimum requests,
--              window ms, open ms, probe (0/1), ttl s; ARGV[3] outcomes, '1' success '0' failure
--              Returns s, ou, p, pu
--   'acquire'  KEYS[1]; A[2..] now ms, open ms, half-open probes, ttl s
--              Returns admitted (0/1), s, ou, p, pu

local CLOSED, HALF_OPEN, OPEN = 0, 1, 2
local FIELDS = {'s', 'ou', 'p', 'pu', 'c', 'ws', 'ok', 'f', 'pok', 'pf'}

local function load(key)
  local values = redis.call('HMGET', key, unpack(FIELDS))
  local r = {}
  for i, name in ipairs(FIELDS) do
    r[name] = tonumber(values[i]) or 0
  end
  return r
end

local function save(key, r, ttl)
  local flat = {}
  for _, name in ipairs(FIELDS) do
    flat[#flat + 1] = name
    flat[#flat + 1] = string.format('%d', r[name])
  end
  redis.call('HSET', key, unpack(flat))
  redis.call('EXPIRE', key, ttl)
end

local function reset(r)
  r.p, r.pu, r.c = 0, 0, 0
  r.ws, r.ok, r.f, r.pok, r.pf = 0, 0, 0, 0, 0
end

local function open(r, now, open_ms)
  r.s = OPEN
  r.ou = now + open_ms
  reset(r)
end

local function close(r)
  r.s = CLOSED
  r.ou = 0
  reset(r)
end

local function roll(r, now, window)
  local start = now - now % window
  if start <= r.ws then
    return
  end
  if start - r.ws == window then
    r.pok, r.pf = r.ok, r.f
  else
    r.pok, r.pf = 0, 0
  end
  r.ok, r.f = 0, 0
  r.ws = start
end

local function ratio_trips(r, now, window, ratio, minimum)
  local weight = (window - (now - r.ws)) / window
  weight = math.min(1.0, math.max(0.0, weight))
  local total = r.ok + r.f + (r.pok + r.pf) * weight
  local failed = r.f + r.pf * weight
  return total >= minimum and failed >= ratio * total
end

local function view(r)
  return {r.s, r.ou, r.p, r.pu}
end

local A = args()
local op = A[1]

if op == 'state' then
  local out = {}
  for _, key in ipairs(KEYS) do
    local values = redis.call('HMGET', key, 's', 'ou', 'p', 'pu')
    for i = 1, 4 do
      out[#out + 1] = tonumber(values[i]) or 0
    end
  end
  return reply(out)
end

local key = KEYS[1]
local now = tonumber(A[2])
local r = load(key)

if op == 'report' then
  local consecutive = tonumber(A[3])
  local ratio = tonumber(A[4])
  local minimum = tonumber(A[5])
  local window = tonumber(A[6])
  local open_ms = tonumber(A[7])
  local probe = A[8] == '1'
  local ttl = tonumber(A[9])
  local outcomes = ARGV[3] or ''
  for i = 1, #outcomes do
    if r.s == OPEN then
      break
    end
    local ok = string.sub(outcomes, i, i) == '1'
    if r.s == HALF_OPEN then
      if not probe then
        break
      end
      if ok then
        close(r)
      else
        open(r, now, open_ms)
      end
    else
      roll(r, now, window)
      if ok then
        r.ok = r.ok + 1
        r.c = 0
      else
        r.f = r.f + 1
        r.c = r.c + 1
        if r.c >= consecutive or ratio_trips(r, now, window, ratio, minimum) then
          open(r, now, open_ms)
        end
      end
    end
  end
  save(key, r, ttl)
  return reply(view(r))
end

if op == 'acquire' then
  local open_ms = tonumber(A[3])
  local probes = tonumber(A[4])
  local ttl = tonumber(A[5])
  local admitted = 0
  if r.s == CLOSED then
    admitted = 1
  elseif r.s == OPEN and now < r.ou then
    admitted = 0
  else
    if r.s == OPEN then
      r.s = HALF_OPEN
      r.p, r.pu = 0, 0
    end
    if now >= r.pu then
      r.p = 0
      r.pu = now + open_ms
    end
    if r.p < probes then
      r.p = r.p + 1
      admitted = 1
    end
    save(key, r, ttl)
  end
  local out = view(r)
  table.insert(out, 1, admitted)
  return reply(out)
end

return redis.error_reply('breaker.lua: unknown operation ' .. tostring(op))

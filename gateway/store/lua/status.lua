-- status: budget and rate-window figures without counting anything (lapsed leases are purged).
--
-- KEYS[2i-1], KEYS[2i]     budget i: counters hash, leases sorted set
-- KEYS[b+2j-1], KEYS[b+2j] rate j (b = 2*nb): window hash, in-flight sorted set
-- A     1 unused, 2 now ms, 3 purge limit, 4 nb, 5 nr,
--       then per rate: 1 if concurrency is limited else 0
-- Returns, comma-joined: per budget: spent, reserved, per rate: requests, tokens, in flight

local A = args()
local now_ms = tonumber(A[2])
local purge_limit = tonumber(A[3])
local nb = tonumber(A[4])
local nr = tonumber(A[5])
local out = {}
for i = 1, nb do
  local hkey, zkey = KEYS[2 * i - 1], KEYS[2 * i]
  purge_budget(hkey, zkey, now_ms, purge_limit)
  local spent, reserved = budget_figures(hkey)
  out[#out + 1] = spent
  out[#out + 1] = reserved
end
for j = 1, nr do
  local wkey, ckey = KEYS[2 * nb + 2 * j - 1], KEYS[2 * nb + 2 * j]
  local requests, used = window_figures(wkey)
  out[#out + 1] = requests
  out[#out + 1] = used
  out[#out + 1] = A[5 + j] == '1' and in_flight(ckey, now_ms) or 0
end
return reply(out)

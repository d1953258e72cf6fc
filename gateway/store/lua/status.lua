-- status: budget and rate-window figures without counting anything (lapsed leases are purged).
--
-- KEYS[2i-1], KEYS[2i]     budget i: counters hash, leases sorted set
-- KEYS[b+2j-1], KEYS[b+2j] rate j (b = 2*nb): window hash, in-flight sorted set
-- ARGV  1 now ms, 2 purge limit, 3 nb, 4 nr, then per rate: 1 if concurrency is limited else 0
-- Returns {per budget: spent, reserved, per rate: requests, tokens, in flight}

local now_ms = tonumber(ARGV[1])
local purge_limit = tonumber(ARGV[2])
local nb = tonumber(ARGV[3])
local nr = tonumber(ARGV[4])
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
  out[#out + 1] = ARGV[4 + j] == '1' and in_flight(ckey, now_ms) or 0
end
return out

-- Admit one request: charge every rate limit and reserve the cost in every budget
-- window, or charge nothing. Checks first, writes after, in one script.
-- ARGV: prefix, id, now override ('' = server time), reservation ttl (us),
--   marker ttl (ms), retention (s), cost (nano-USD),
--   n_rates, then per rate (scope, metric, per_minute, units),
--   n_budgets, then per budget (scope, per, limit in nano-USD).
-- Returns {'rate', index, over_us} | {'budget', index, spent, stop, now}
--   | {'ok', now, tat per rate..., (start, stop, spent, reserved) per budget...}
local prefix, id = ARGV[1], ARGV[2]
local now = clock(ARGV[3])
local ttl_us, marker_ms, retention_s = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local cost = tonumber(ARGV[7])
local i = 8

local rates = {}
local worst, worst_over = nil, EPS_US
for r = 1, tonumber(ARGV[i]) do
  local scope, metric = ARGV[i + 1], ARGV[i + 2]
  local per_minute, units = tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])
  i = i + 4
  local key = rate_key(prefix, metric, scope)
  local stored = redis.call('GET', key)
  local tat = stored and tonumber(stored) or now
  if tat < now then tat = now end
  tat = tat + units * MINUTE_US / per_minute
  local over = tat - now - MINUTE_US
  if over > worst_over then worst, worst_over = r, over end
  rates[r] = {key, tat}
end
if worst then return {'rate', worst, int(worst_over)} end
i = i + 1

local windows = {}
for b = 1, tonumber(ARGV[i]) do
  local scope, per, limit = ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  i = i + 3
  local start, stop = window(per, now)
  local tot, res, dl = window_keys(prefix, per, start, scope)
  purge(tot, res, dl, now)
  local spent = tonumber(redis.call('HGET', tot, 'spent') or 0)
  local reserved = tonumber(redis.call('HGET', tot, 'reserved') or 0)
  if spent + reserved + cost > limit then return {'budget', b, int(spent), stop, int(now)} end
  windows[b] = {tot, res, dl, start, stop, spent}
end

-- Every check passed: charge everything.
local out = {'ok', int(now)}
for _, rate in ipairs(rates) do
  set_tat(rate[1], rate[2], now)
  table.insert(out, int(rate[2]))
end
local deadline = int(now + ttl_us)
for _, w in ipairs(windows) do
  redis.call('HSET', w[2], id, int(cost))
  redis.call('ZADD', w[3], deadline, id)
  local reserved = redis.call('HINCRBY', w[1], 'reserved', int(cost))
  keep({w[1], w[2], w[3]}, w[5], now, retention_s)
  table.insert(out, w[4])
  table.insert(out, w[5])
  table.insert(out, int(w[6]))
  table.insert(out, reserved)
end
redis.call('SET', prefix .. 'rsv:' .. id, '1', 'PX', marker_ms)
return out

-- Budgets' current windows (expired reservations purged first).
-- ARGV: prefix, now override, n, then per budget (scope, per).
-- Returns (start, stop, spent, reserved) per budget.
local prefix = ARGV[1]
local now = clock(ARGV[2])
local out = {}
local i = 3
for _ = 1, tonumber(ARGV[i]) do
  local scope, per = ARGV[i + 1], ARGV[i + 2]
  i = i + 2
  local start, stop = window(per, now)
  local tot, res, dl = window_keys(prefix, per, start, scope)
  purge(tot, res, dl, now)
  table.insert(out, start)
  table.insert(out, stop)
  table.insert(out, tonumber(redis.call('HGET', tot, 'spent') or 0))
  table.insert(out, tonumber(redis.call('HGET', tot, 'reserved') or 0))
end
return out

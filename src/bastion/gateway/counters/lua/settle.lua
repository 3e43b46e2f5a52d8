-- Settle (or, with cost 0 and delta = -estimate, release) one reservation, once:
-- the reservation's marker is deleted here, so a second call finds none and does nothing.
-- ARGV: prefix, id, now override, retention (s), actual cost (nano-USD), token delta,
--   n_windows, then per window (scope, per, start),
--   n_token_limits, then per limit (scope, per_minute).
-- Returns 1 if settled now, 0 if it had been already.
local prefix, id = ARGV[1], ARGV[2]
if redis.call('DEL', prefix .. 'rsv:' .. id) == 0 then return 0 end
local now = clock(ARGV[3])
local retention_s, actual, delta = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local i = 7

for _ = 1, tonumber(ARGV[i]) do
  local scope, per, start = ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  i = i + 3
  local tot, res, dl = window_keys(prefix, per, start, scope)
  local amount = redis.call('HGET', res, id)
  if amount then
    redis.call('HDEL', res, id)
    redis.call('ZREM', dl, id)
    redis.call('HINCRBY', tot, 'reserved', int(-tonumber(amount)))
  end
  -- Also when the reservation expired meanwhile: the money was spent.
  if actual ~= 0 then redis.call('HINCRBY', tot, 'spent', int(actual)) end
  local _, stop = window(per, start * 1000000)
  keep({tot, res, dl}, stop, now, retention_s)
end
i = i + 1

for _ = 1, tonumber(ARGV[i]) do
  local scope, per_minute = ARGV[i + 1], tonumber(ARGV[i + 2])
  i = i + 2
  if delta ~= 0 then
    local key = rate_key(prefix, 'tokens', scope)
    local stored = redis.call('GET', key)
    local tat = stored and tonumber(stored) or now
    if tat < now then tat = now end
    -- A refund never fills the bucket beyond its capacity (tat >= now).
    set_tat(key, math.max(now, tat + delta * MINUTE_US / per_minute), now)
  end
end
return 1

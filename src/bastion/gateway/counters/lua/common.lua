-- Helpers shared by every counters script (the Python side prepends this file).
-- Times are microseconds since the epoch, from the Redis server's clock unless the
-- caller passes one (tests); amounts are integer nano-USD.
local MINUTE_US = 60000000
local EPS_US = 1

-- Numbers handed to redis.call are formatted with %.14g, which turns large integers
-- into exponents; format them ourselves.
local function int(x) return string.format('%.0f', x) end
local function exact(x) return string.format('%.17g', x) end

local function clock(override)
  if override ~= '' then return tonumber(override) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- Proleptic Gregorian calendar <-> days since 1970-01-01 (H. Hinnant's algorithms).
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = m > 2 and m - 3 or m + 9
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local function civil_from_days(z)
  z = z + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return y, m
end

-- The calendar window [start, stop) in UTC seconds holding now_us.
local function window(per, now_us)
  local day = math.floor(now_us / 1000000 / 86400)
  if per == 'day' then return day * 86400, (day + 1) * 86400 end
  if per == 'week' then
    local monday = day - (day + 3) % 7  -- 1970-01-01 was a Thursday
    return monday * 86400, (monday + 7) * 86400
  end
  local y, m = civil_from_days(day)
  local start = days_from_civil(y, m, 1)
  if m == 12 then y, m = y + 1, 1 else m = m + 1 end
  return start * 86400, days_from_civil(y, m, 1) * 86400
end

-- A window's keys: <prefix>bud:<per>:<start>:<scope>:{tot,res,dl}. The suffix has no
-- colon, so no scope can produce another scope's keys.
local function window_keys(prefix, per, start, scope)
  local base = prefix .. 'bud:' .. per .. ':' .. int(start) .. ':' .. scope .. ':'
  return base .. 'tot', base .. 'res', base .. 'dl'
end

local function rate_key(prefix, metric, scope)
  return prefix .. 'rl:' .. metric .. ':' .. scope
end

-- Drop reservations whose deadline has passed (a crashed replica's, say).
local function purge(tot, res, dl, now)
  local ids = redis.call('ZRANGEBYSCORE', dl, '-inf', int(now))
  if #ids == 0 then return end
  local freed = 0
  for _, id in ipairs(ids) do
    local amount = redis.call('HGET', res, id)
    if amount then
      freed = freed + tonumber(amount)
      redis.call('HDEL', res, id)
    end
  end
  redis.call('ZREMRANGEBYSCORE', dl, '-inf', int(now))
  if freed ~= 0 then redis.call('HINCRBY', tot, 'reserved', int(-freed)) end
end

-- Keep a window's keys until `retention_s` after its end.
local function keep(keys, stop, now, retention_s)
  local ms = math.max(1000, (stop + retention_s) * 1000 - math.floor(now / 1000))
  for _, key in ipairs(keys) do redis.call('PEXPIRE', key, int(ms)) end
end

local function set_tat(key, tat, now)
  if tat <= now then
    redis.call('DEL', key)  -- a full bucket needs no key
  else
    redis.call('SET', key, exact(tat), 'PX', int(math.ceil((tat - now) / 1000) + 1))
  end
end

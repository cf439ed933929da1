-- One GCRA decision, atomically: the arithmetic of governor (the in-memory
-- limiter, gcra.rs there) in whole microseconds, on Redis server time so that
-- instances with skewed clocks agree.
--
-- KEYS[1]  the bucket; its value is the theoretical arrival time (TAT), in µs
--          since the Unix epoch. Missing means a full bucket.
-- ARGV[1]  emission interval T in µs: one cell every T
-- ARGV[2]  burst B: cells at once; the tolerance is tau = T * (B - 1)
-- ARGV[3]  now in µs since the Unix epoch, or empty for Redis's TIME (tests
--          pass explicit times to compare with governor's fake clock; such
--          keys get no expiry)
--
-- Returns {allowed 1|0, remaining, reset µs, retry-after µs or -1}, the numbers
-- of the in-memory limiter's answer (limits.rs, ClientLimits::check):
--   allowed: remaining = cells left after this one; reset = T * (B - remaining)
--   refused: remaining = 0; retry-after = until the next cell conforms;
--            reset = retry-after + tau
-- Every number stays below 2^53, where Lua's doubles are exact integers.
local t = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now
local explicit = ARGV[3] ~= nil and ARGV[3] ~= ''
if explicit then
  now = tonumber(ARGV[3])
else
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000000 + tonumber(time[2])
end
local tau = t * (burst - 1)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)

local earliest = tat - tau
if now < earliest then
  local wait = earliest - now
  return {0, 0, wait + tau, wait}
end

local next_tat = math.max(tat, now) + t
if explicit then
  -- Another clock than Redis's: an expiry in Redis time would mean nothing.
  redis.call('SET', KEYS[1], string.format('%.0f', next_tat))
else
  -- The key lives until the bucket is full again (TAT reached): absent then
  -- means the same as present.
  local ttl_ms = math.ceil((next_tat - now) / 1000)
  redis.call('SET', KEYS[1], string.format('%.0f', next_tat),
    'PX', string.format('%.0f', ttl_ms))
end
local capacity = math.min(math.max(now + tau + t - next_tat, 0), tau + t)
local remaining = math.floor(capacity / t)
return {1, remaining, t * (burst - remaining), -1}

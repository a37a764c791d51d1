"""Cluster-wide rate limits and cool-downs, kept in Redis and updated atomically by Lua scripts."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import redis

from autosync import metrics

# The clock is Redis's own (TIME), never the caller's: admissions from every process and host are
# ordered by one clock, and a caller delayed between reading its clock and running the script cannot
# slip an old timestamp into the window. (Scripts are replicated by effects, so TIME is allowed.)
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# Sliding-window log: KEYS = one zset per limit, then the cool-down keys; ARGV = (unused), number of
# limits, then (count, period_ms) per limit, then a unique member. At most `count` requests enter
# any window of `period_ms` (strict, unlike a token bucket that allows a double burst at edges).
# Returns 0 when the request was admitted by every limit, else the milliseconds to wait.
_ACQUIRE = _NOW + """
local nb = tonumber(ARGV[2])
local wait = 0
for i = nb + 1, #KEYS do
  local ttl = redis.call('PTTL', KEYS[i])
  if ttl > wait then wait = ttl end
end
if wait > 0 then return wait end
for i = 1, nb do
  local count = tonumber(ARGV[1 + 2 * i])
  local period = tonumber(ARGV[2 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - period)
  if redis.call('ZCARD', KEYS[i]) >= count then
    local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    local need = tonumber(oldest[2]) + period - now + 1
    if need > wait then wait = need end
  end
end
if wait > 0 then return wait end
local member = ARGV[3 + 2 * nb]
for i = 1, nb do
  redis.call('ZADD', KEYS[i], now, member)
  redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[2 + 2 * i]) + 1000)
end
return 0
"""

# Semaphore with leases: KEYS[1] = zset of holders scored by lease expiry.
_SEM_ACQUIRE = _NOW + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[4])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) + 1000)
  return 0
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, math.min(250, tonumber(first[2]) - now))
"""


@dataclass(frozen=True)
class Limit:
    """count requests per period seconds for one key; count 0 disables it."""

    key: str
    count: int
    period: float


class RateLimiter:
    """Sliding-window limits, cool-downs shared by every worker process and host through Redis."""

    def __init__(self, client: redis.Redis, prefix: str = "autosync") -> None:
        self.redis = client
        self.prefix = prefix
        self._acquire = client.register_script(_ACQUIRE)
        self._sem = client.register_script(_SEM_ACQUIRE)

    def _k(self, kind: str, key: str) -> str:
        return f"{self.prefix}:{kind}:{key}"

    def try_acquire(self, limits: list[Limit], cooldown_keys: list[str]) -> float:
        """Take one request from every bucket, or return the seconds to wait (nothing taken)."""
        active = [lim for lim in limits if lim.count > 0]
        keys = [self._k("bucket", lim.key) for lim in active] + [self._k("cooldown", k) for k in cooldown_keys]
        args: list[float | str] = [0, len(active)]
        for lim in active:
            args += [lim.count, int(lim.period * 1000)]
        args.append(uuid.uuid4().hex)
        wait_ms = int(self._acquire(keys=keys, args=args))
        return wait_ms / 1000.0

    def cool_down(self, key: str, seconds: float) -> None:
        """Every worker stops sending for ``key`` for ``seconds`` (longer cool-downs win)."""
        ms = max(1, int(seconds * 1000))
        name = self._k("cooldown", key)
        current: Any = self.redis.pttl(name)
        if current is None or int(current) < ms:
            self.redis.set(name, "1", px=ms)
            metrics.cooldown_started(key, ms / 1000)

    def cooldown_left(self, key: str) -> float:
        """Seconds left in a cool-down (0 when none)."""
        left: Any = self.redis.pttl(self._k("cooldown", key))
        ttl = int(left)
        return max(ttl, 0) / 1000.0

    def acquire_slot(self, key: str, size: int, lease: float = 60.0) -> tuple[str | None, float]:
        """Take one of ``size`` concurrent slots; returns (token, 0) or (None, seconds to wait)."""
        token = uuid.uuid4().hex
        wait_ms = int(self._sem(keys=[self._k("slots", key)],
                                args=[0, size, int(lease * 1000), token]))
        return (token, 0.0) if wait_ms == 0 else (None, wait_ms / 1000.0)

    def release_slot(self, key: str, token: str) -> None:
        """Give a concurrent slot back."""
        self.redis.zrem(self._k("slots", key), token)

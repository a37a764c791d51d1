"""Cluster-wide rate limits and cool-downs, kept in Redis and updated atomically by Lua scripts."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis

# Token bucket: KEYS = bucket keys...; ARGV = now_ms, then (capacity, refill_per_ms) per key,
# then the cool-down keys count and cool-down keys are passed after the buckets.
# Returns 0 when a token was taken from every bucket, else the milliseconds to wait.
_ACQUIRE = """
local now = tonumber(ARGV[1])
local nb = tonumber(ARGV[2])
local wait = 0
for i = 1, #KEYS - nb do
  local ttl = redis.call('PTTL', KEYS[nb + i])
  if ttl > wait then wait = ttl end
end
if wait > 0 then return wait end
local state = {}
for i = 1, nb do
  local cap = tonumber(ARGV[1 + 2 * i])
  local rate = tonumber(ARGV[2 + 2 * i])
  local v = redis.call('HMGET', KEYS[i], 't', 'ts')
  local tokens = tonumber(v[1]) or cap
  local ts = tonumber(v[2]) or now
  tokens = math.min(cap, tokens + (now - ts) * rate)
  if tokens < 1 then
    local need = math.ceil((1 - tokens) / rate)
    if need > wait then wait = need end
  end
  state[i] = tokens
end
if wait > 0 then return wait end
for i = 1, nb do
  local cap = tonumber(ARGV[1 + 2 * i])
  local rate = tonumber(ARGV[2 + 2 * i])
  redis.call('HSET', KEYS[i], 't', state[i] - 1, 'ts', now)
  redis.call('PEXPIRE', KEYS[i], math.ceil(cap / rate) + 1000)
end
return 0
"""

# Semaphore with leases: KEYS[1] = zset of holders scored by lease expiry.
_SEM_ACQUIRE = """
local now = tonumber(ARGV[1])
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
    """Token buckets and cool-downs shared by every worker process and host through Redis."""

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
        args: list[float] = [int(time.time() * 1000), len(active)]
        for lim in active:
            args += [lim.count, lim.count / (lim.period * 1000.0)]
        wait_ms = int(self._acquire(keys=keys, args=args))
        return wait_ms / 1000.0

    def cool_down(self, key: str, seconds: float) -> None:
        """Every worker stops sending for ``key`` for ``seconds`` (longer cool-downs win)."""
        ms = max(1, int(seconds * 1000))
        name = self._k("cooldown", key)
        current: Any = self.redis.pttl(name)
        if current is None or int(current) < ms:
            self.redis.set(name, "1", px=ms)

    def cooldown_left(self, key: str) -> float:
        """Seconds left in a cool-down (0 when none)."""
        left: Any = self.redis.pttl(self._k("cooldown", key))
        ttl = int(left)
        return max(ttl, 0) / 1000.0

    def acquire_slot(self, key: str, size: int, lease: float = 60.0) -> tuple[str | None, float]:
        """Take one of ``size`` concurrent slots; returns (token, 0) or (None, seconds to wait)."""
        token = uuid.uuid4().hex
        wait_ms = int(self._sem(keys=[self._k("slots", key)],
                                args=[int(time.time() * 1000), size, int(lease * 1000), token]))
        return (token, 0.0) if wait_ms == 0 else (None, wait_ms / 1000.0)

    def release_slot(self, key: str, token: str) -> None:
        """Give a concurrent slot back."""
        self.redis.zrem(self._k("slots", key), token)

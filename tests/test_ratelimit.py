"""The cluster-wide limiter against real Redis: strict windows, cool-downs, mailbox slots."""

from __future__ import annotations

import threading
import time

import redis

from autosync.ratelimit import Limit, RateLimiter


def _admit(limiter: RateLimiter, limits: list[Limit], until: float, stamps: list[tuple[float, float]],
           cooldowns: list[str] | None = None) -> None:
    """Admit until ``until``; each admission is recorded as (time before the call, time after it)."""
    while time.monotonic() < until:
        before = time.time()
        wait = limiter.try_acquire(limits, cooldowns or [])
        if wait == 0:
            stamps.append((before, time.time()))
        else:
            time.sleep(min(wait, 0.05))


def test_no_window_ever_admits_more_than_the_limit_across_threads(limits_redis: redis.Redis) -> None:
    limiter = RateLimiter(limits_redis, prefix="t1")
    limits = [Limit("acct:a", 5, 0.5)]
    stamps: list[tuple[float, float]] = []
    until = time.monotonic() + 1.6
    threads = [threading.Thread(target=_admit, args=(RateLimiter(limits_redis, prefix="t1"), limits, until, stamps))
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stamps.sort()
    assert len(stamps) >= 10  # it does admit, at the configured pace
    # An admission happened (on Redis's clock, the machine's) somewhere between its two stamps. More
    # than 5 admissions whose whole intervals fit in one 0.5 s window would prove the limit broken;
    # a thread delayed around its call only widens its interval, so scheduling noise cannot fail this.
    for i, (start, _) in enumerate(stamps):
        surely_inside = [a for _, a in stamps[i:] if a < start + 0.5 - 0.002]
        assert len(surely_inside) <= 5
    assert limiter.try_acquire([Limit("acct:other", 5, 0.5)], []) == 0  # keys are independent


def test_cool_down_blocks_everyone_until_it_expires(limits_redis: redis.Redis) -> None:
    limiter = RateLimiter(limits_redis, prefix="t2")
    limiter.cool_down("google:acct:x", 0.4)
    assert 0 < limiter.try_acquire([], ["google:acct:x"]) <= 0.4
    assert limiter.cooldown_left("google:acct:x") > 0
    limiter.cool_down("google:acct:x", 0.1)  # a shorter cool-down never shortens a longer one
    assert limiter.cooldown_left("google:acct:x") > 0.2
    time.sleep(0.45)
    assert limiter.try_acquire([], ["google:acct:x"]) == 0


def test_mailbox_slots_allow_four_concurrent_requests(limits_redis: redis.Redis) -> None:
    limiter = RateLimiter(limits_redis, prefix="t3")
    tokens = [limiter.acquire_slot("outlook:mbx:m", 4)[0] for _ in range(4)]
    assert all(tokens)
    token, wait = limiter.acquire_slot("outlook:mbx:m", 4)
    assert token is None and wait > 0
    limiter.release_slot("outlook:mbx:m", tokens[0] or "")
    assert limiter.acquire_slot("outlook:mbx:m", 4)[0] is not None


def test_expired_slot_leases_are_reclaimed(limits_redis: redis.Redis) -> None:
    limiter = RateLimiter(limits_redis, prefix="t4")
    assert limiter.acquire_slot("m", 1, lease=0.1)[0]  # a worker that died holding it
    assert limiter.acquire_slot("m", 1, lease=0.1)[0] is None
    time.sleep(0.15)
    assert limiter.acquire_slot("m", 1, lease=0.1)[0] is not None

"""Counters kept inside worker processes (tasks, SQL statements, broker messages), flushed to Redis.

Nothing here is sent per task: each worker process keeps plain counters in memory and a daemon
thread writes them to one Redis hash per process every ``FLUSH_EVERY`` seconds, so the measured
tasks pay only an integer increment per statement / message / task.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import psycopg
import redis

FLUSH_EVERY = 0.1
STATS_PREFIX = "bench:stats:"

counters: Counter[str] = Counter()
gauges: dict[str, float] = {}
_lock = threading.Lock()
_started_pid: int | None = None
_client: redis.Redis | None = None
_key = ""


def bump(key: str, n: int = 1) -> None:
    """Add to a counter (GIL-atomic enough for a benchmark; the lock keeps threads pools exact)."""
    with _lock:
        counters[key] += n


def high_water(key: str, value: float) -> None:
    """Keep the maximum seen for a gauge."""
    with _lock:
        if value > gauges.get(key, 0):
            gauges[key] = value


def stamp(key: str) -> None:
    """Record the wall-clock time of the latest event of a kind."""
    with _lock:
        gauges[key] = time.time()


def patch_psycopg() -> None:
    """Count every statement a worker sends (execute, executemany rows, COPY) and every transaction."""
    cursor = psycopg.Cursor
    execute, executemany, copy = cursor.execute, cursor.executemany, cursor.copy

    def counted_execute(self: Any, query: Any, params: Any = None, **kw: Any) -> Any:
        bump("sql.statements")
        return execute(self, query, params, **kw)

    def counted_executemany(self: Any, query: Any, params_seq: Any, **kw: Any) -> Any:
        rows = list(params_seq)
        bump("sql.statements", len(rows))
        return executemany(self, query, rows, **kw)

    def counted_copy(self: Any, statement: Any, params: Any = None, **kw: Any) -> Any:
        bump("sql.statements")
        bump("sql.copy")
        return copy(self, statement, params, **kw)

    cursor.execute = counted_execute  # type: ignore[method-assign]
    cursor.executemany = counted_executemany  # type: ignore[method-assign]
    cursor.copy = counted_copy  # type: ignore[method-assign]
    enter = psycopg.Transaction.__enter__

    def counted_enter(self: Any) -> Any:
        bump("sql.transactions")
        return enter(self)

    psycopg.Transaction.__enter__ = counted_enter  # type: ignore[method-assign]


def patch_kombu() -> None:
    """Record the size of every task message as it is LPUSHed to Redis (the exact bytes stored)."""
    from kombu.transport import redis as kredis
    from kombu.utils.json import dumps

    put = kredis.Channel._put

    def measured_put(self: Any, queue: str, message: dict[str, Any], **kw: Any) -> Any:
        size = len(dumps(message).encode())
        name = (message.get("headers") or {}).get("task", "?")
        bump("msg.count")
        bump("msg.bytes", size)
        high_water("msg.max_bytes", size)
        high_water(f"msg.max_bytes:{name}", size)
        return put(self, queue, message, **kw)

    kredis.Channel._put = measured_put  # type: ignore[method-assign]


# Callables polled at each flush for cumulative per-process figures (e.g. the PostgreSQL pool's
# counters); what they return is written as it is, so summing over processes stays right.
probes: list[Callable[[], dict[str, float]]] = []


def _snapshot() -> dict[str, str]:
    polled: dict[str, float] = {}
    for probe in probes:
        with contextlib.suppress(Exception):
            polled.update(probe())
    with _lock:
        data: dict[str, Any] = {**counters, **gauges, **polled}
    data["flushedAt"] = time.time()
    return {k: json.dumps(v) for k, v in data.items()}


def start_flusher(stats_url: str) -> None:
    """Start (once per process) the thread that mirrors the counters into Redis."""
    global _started_pid, _client, _key
    if _started_pid == os.getpid():
        return
    _started_pid = os.getpid()
    _client = redis.Redis.from_url(stats_url)
    _key = f"{STATS_PREFIX}{os.getpid()}"

    def loop() -> None:
        while True:
            flush_now()
            time.sleep(FLUSH_EVERY)

    threading.Thread(target=loop, name="bench-stats", daemon=True).start()


def flush_now() -> None:
    """Write the counters now (also called when a pool process exits, so nothing is lost)."""
    if _client is None or _started_pid != os.getpid():
        return
    with contextlib.suppress(redis.RedisError):
        _client.hset(_key, mapping=_snapshot())


def read_totals(client: redis.Redis) -> dict[str, float]:
    """Sum counters over every worker process; gauges (max_*, *At) take the maximum."""
    totals: dict[str, float] = {}
    for key in client.scan_iter(f"{STATS_PREFIX}*"):
        fields: dict[bytes, bytes] = client.hgetall(key)  # type: ignore[assignment]
        for field, raw in fields.items():
            name, value = field.decode(), float(json.loads(raw))
            if name.startswith(("msg.max_bytes", "last.")) or name == "flushedAt":
                totals[name] = max(totals.get(name, 0.0), value)
            else:
                totals[name] = totals.get(name, 0.0) + value
    return totals

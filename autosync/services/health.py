"""Health: can PostgreSQL and the broker be reached, is a beat fanning out, is a worker alive.

Every answer names the service and the variable that points at it, never credentials, so the CLI
can fail in a few seconds with one readable line instead of a pool timeout and a traceback.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from autosync.errors import AutosyncError, SchemaNotReady, ServiceUnavailable
from autosync.settings import get_settings

DATABASE = ("PostgreSQL", "AUTOSYNC_DATABASE_URL")
BROKER = ("the broker", "AUTOSYNC_BROKER_URL")
PROBE_TIMEOUT = 3.0
# How often a worker touches its liveness file (autosync/celery.py); a check allows several misses.
HEARTBEAT_EVERY = 5.0


def where(url: str, default_port: int) -> str:
    """host:port of a service URL, without user or password."""
    parts = urlsplit(url)
    if not parts.hostname:
        return "the local socket"
    return f"{parts.hostname}:{parts.port or default_port}"


def _reason(exc: BaseException) -> str:
    """The cause of a connection failure in a few words (driver messages carry no credentials)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"^Error \d+ connecting to \S+\.\s*", "", text)  # redis-py's prefix
    text = text.split(" failed: ")[-1]  # libpq: 'connection to server at "h", port p failed: <why>'
    return re.sub(r"^(FATAL|ERROR):\s+", "", text).rstrip(".") or type(exc).__name__


def database_unavailable(exc: BaseException, url: str | None = None) -> ServiceUnavailable:
    """The ServiceUnavailable for PostgreSQL, from the error that showed it."""
    return ServiceUnavailable(DATABASE[0], DATABASE[1], where(url or get_settings().database_url, 5432),
                              _reason(exc))


def broker_unavailable(exc: BaseException, url: str | None = None) -> ServiceUnavailable:
    """The ServiceUnavailable for the broker, from the error that showed it."""
    return ServiceUnavailable(BROKER[0], BROKER[1], where(url or get_settings().broker_url, 6379), _reason(exc))


def check_database(url: str | None = None, timeout: float = PROBE_TIMEOUT) -> None:
    """Raise ServiceUnavailable unless PostgreSQL answers within ``timeout`` seconds."""
    import psycopg

    from autosync.store.health import probe

    url = url or get_settings().database_url
    try:
        probe(url, timeout)
    except psycopg.Error as exc:
        raise database_unavailable(exc, url) from None


def check_broker(url: str | None = None, timeout: float = PROBE_TIMEOUT) -> None:
    """Raise ServiceUnavailable unless the broker (Redis) answers a PING within ``timeout`` seconds."""
    import redis

    url = url or get_settings().broker_url
    if url.startswith("redis+socket://"):  # Kombu's Unix-socket scheme; redis-py spells it unix://
        url = "unix://" + url[len("redis+socket://"):]
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        raise broker_unavailable(exc, url) from None
    finally:
        client.close()


def classify(exc: BaseException) -> AutosyncError | None:
    """Map a driver error raised in the middle of a command to what the operator must know."""
    import kombu.exceptions
    import psycopg
    import psycopg_pool
    import redis

    if isinstance(exc, (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn)):
        return SchemaNotReady(f"the database at {where(get_settings().database_url, 5432)} (AUTOSYNC_DATABASE_URL) "
                              f"lacks autosync's schema ({exc.diag.message_primary}): run `autosync db upgrade`")
    if isinstance(exc, (psycopg.OperationalError, psycopg_pool.PoolTimeout)):
        return database_unavailable(exc)
    if isinstance(exc, (kombu.exceptions.OperationalError, redis.ConnectionError, redis.TimeoutError)):
        return broker_unavailable(exc)
    return None


@dataclass(frozen=True)
class Verdict:
    """The answer of a health check: healthy or not, and one line saying why."""

    healthy: bool
    message: str


def beat_health(max_age: float | None = None, url: str | None = None) -> Verdict:
    """Healthy when a periodic fan-out ran within ``max_age`` seconds (default: two intervals + 60 s).

    The fan-out is recorded by the worker that ran it (table fan_out), so this checks the whole
    beat → broker → worker → PostgreSQL path, whichever beat sent it.
    """
    import psycopg

    from autosync.store.health import fan_out_state

    settings = get_settings()
    url = url or settings.database_url
    try:
        rows = fan_out_state(url, PROBE_TIMEOUT)
    except psycopg.errors.UndefinedTable as exc:
        raise SchemaNotReady(f"no fan_out table ({exc.diag.message_primary}): run `autosync db upgrade`") from None
    except psycopg.Error as exc:
        raise database_unavailable(exc, url) from None
    if not rows:
        return Verdict(False, "no periodic fan-out recorded yet (is `celery -A autosync beat` running, "
                              "and a worker consuming the autosync queue?)")
    last = rows[0]
    limit = max_age if max_age is not None else 2 * float(last["interval"]) + 60
    age = float(last["age"])
    twice = ""
    if last["duplicate_age"] is not None and float(last["duplicate_age"]) < max(2 * float(last["interval"]), 60):
        twice = f"; another beat's fan-out was skipped {float(last['duplicate_age']):.0f}s ago (two beats running)"
    if age > limit:
        return Verdict(False, f"last fan-out {age:.0f}s ago, over {limit:.0f}s (beat stopped, or no worker "
                              f"consumes the autosync queue){twice}")
    return Verdict(True, f"last fan-out {age:.0f}s ago ({last['lastRuns']} runs opened, every "
                         f"{last['interval']}s){twice}")


def worker_health(path: str | None = None, max_age: float | None = None) -> Verdict:
    """Healthy when the worker's liveness file was touched within ``max_age`` seconds (a stat, no broker)."""
    target = Path(path or get_settings().worker_liveness_file)
    limit = max_age if max_age is not None else 6 * HEARTBEAT_EVERY
    try:
        age = time.time() - target.stat().st_mtime
    except FileNotFoundError:
        return Verdict(False, f"{target} does not exist: no worker is running (or it is not connected to the "
                              "broker)")
    if age > limit:
        return Verdict(False, f"{target} last touched {age:.0f}s ago, over {limit:.0f}s: the worker is hung")
    return Verdict(True, f"worker alive: {target} touched {age:.1f}s ago")


def touch(path: str) -> None:
    """Record that the worker is alive (called from its own timer)."""
    target = Path(path)
    try:
        target.touch()
    except FileNotFoundError:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch()


def remove(path: str) -> None:
    """The worker stopped consuming: a liveness check must fail at once."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)

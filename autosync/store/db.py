"""Connections to PostgreSQL: one pool per process, and a helper for autosync's own write transactions."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import set_json_loads
from psycopg_pool import ConnectionPool

from autosync.settings import get_settings

DictRow = dict[str, Any]
Conn = psycopg.Connection[DictRow]

# Staged pages come back as jsonb; orjson parses them several times faster than the stdlib.
set_json_loads(orjson.loads)

_pool: ConnectionPool[Conn] | None = None
_pool_pid: int | None = None
_lock = threading.Lock()


def connect(url: str | None = None, *, autocommit: bool = False, **options: Any) -> Conn:
    """A new connection (dict rows) outside the pool, for the CLI and migrations (libpq ``options`` too)."""
    return psycopg.connect(url or get_settings().database_url, autocommit=autocommit, row_factory=dict_row,
                           **options)


def ping(conn: Conn) -> None:
    """One round trip: raises when the server is gone."""
    conn.execute("SELECT 1")


def pool() -> ConnectionPool[Conn]:
    """The process-wide pool, created lazily and re-created after a fork."""
    global _pool, _pool_pid
    with _lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = ConnectionPool(
                get_settings().database_url,
                connection_class=psycopg.Connection[DictRow],
                min_size=1,
                # Per process. No step holds a connection while a provider answers (leases replace
                # locks held across calls), so a connection is busy only for SQL: a pool far smaller
                # than the I/O pool's threads serves them (the benchmark records waits for it).
                max_size=get_settings().db_pool_size,
                # Every pooled connection is autosync's own: the outbox trigger ignores its writes
                # (no echo) without a set_config round trip per transaction.
                kwargs={"row_factory": dict_row, "autocommit": False, "options": "-c autosync.origin=sync"},
                open=True,
                name="autosync",
            )
            _pool_pid = os.getpid()
        return _pool


def close_pool() -> None:
    """Close the pool (worker shutdown, tests)."""
    global _pool
    with _lock:
        if _pool is not None and _pool_pid == os.getpid():
            _pool.close()
        _pool = None


@contextmanager
def transaction(*, origin_sync: bool = True, timeout: float | None = None) -> Iterator[Conn]:
    """One transaction on a pooled connection.

    With ``origin_sync`` the transaction is marked as autosync's own (``autosync.origin = 'sync'``),
    so the outbox trigger does not mistake imports for app changes. ``timeout`` bounds the wait for a
    connection (PoolTimeout after it; the pool's 30 s by default) where a caller must answer quickly.
    """
    with pool().connection(timeout=timeout) as conn, conn.transaction():
        if not origin_sync:
            conn.execute("SELECT set_config('autosync.origin', '', true)")
        yield conn

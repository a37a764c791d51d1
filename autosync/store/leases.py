"""SQL for named leases: claim one with a conditional upsert, release it by its holder."""

from __future__ import annotations

from autosync.store.db import Conn

# A free key is inserted; a taken one is only overwritten once its lease has expired. Concurrent
# claims of one key serialize on its row (the loser re-checks the WHERE against the winner's row),
# so at most one claimant gets a row back.
CLAIM = (
    'INSERT INTO autosync_lease (key, holder, "expiresAt") '
    "VALUES (%(key)s, %(holder)s, clock_timestamp() + make_interval(secs => %(ttl)s)) "
    'ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, "expiresAt" = excluded."expiresAt" '
    'WHERE autosync_lease."expiresAt" <= clock_timestamp() RETURNING holder'
)
RELEASE = "DELETE FROM autosync_lease WHERE key = %(key)s AND holder = %(holder)s"


def claim(conn: Conn, key: str, holder: str, ttl: float) -> bool:
    """Take the lease on ``key`` for ``ttl`` seconds unless someone else holds it."""
    return conn.execute(CLAIM, {"key": key, "holder": holder, "ttl": ttl}).fetchone() is not None


def release(conn: Conn, key: str, holder: str) -> None:
    """Give the lease back (a no-op when it expired and someone else took it)."""
    conn.execute(RELEASE, {"key": key, "holder": holder})

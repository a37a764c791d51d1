"""Versioned SQL migrations: applied in order, recorded in a table, serialized by an advisory lock."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

import psycopg

LOCK_KEY = 0x6175746F73796E63  # "autosync"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """sha256 of the file, recorded so an edited, already-applied migration is noticed."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available() -> list[Migration]:
    """Every migration shipped in the package, in version order."""
    found = []
    for entry in resources.files("autosync.store").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


def upgrade(url: str, report: Callable[[str], None] = print) -> list[int]:
    """Apply pending migrations; returns the versions applied (empty when already up to date)."""
    applied_now: list[int] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        try:
            conn.execute(
                """CREATE TABLE IF NOT EXISTS autosync_migration (
                       version integer PRIMARY KEY,
                       name text NOT NULL,
                       checksum text NOT NULL,
                       "appliedAt" timestamptz NOT NULL DEFAULT now())"""
            )
            rows = conn.execute("SELECT version, checksum FROM autosync_migration").fetchall()
            done = {int(v): c for v, c in rows}
            migrations = available()
            for m in migrations:
                if m.version in done and done[m.version] != m.checksum:
                    report(f"warning: migration {m.version:04d}_{m.name} changed after it was applied")
            pending = [m for m in migrations if m.version not in done]
            if not pending:
                latest = max(done, default=0)
                report(f"database is up to date at version {latest:04d}; nothing to do")
                return applied_now
            for i, m in enumerate(pending, 1):
                started = time.monotonic()
                report(f"[{i}/{len(pending)}] applying {m.version:04d}_{m.name} ...")
                with conn.transaction():
                    conn.execute(m.sql.encode())  # type: ignore[call-overload]
                    conn.execute(
                        "INSERT INTO autosync_migration (version, name, checksum) VALUES (%s, %s, %s)",
                        (m.version, m.name, m.checksum),
                    )
                report(f"[{i}/{len(pending)}] applied {m.version:04d}_{m.name} in "
                       f"{time.monotonic() - started:.2f}s")
                applied_now.append(m.version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    return applied_now

"""Versioned SQL migrations: loaded, validated, applied in order under an advisory lock, and recorded.

Two kinds of file live in ``migrations/``:

- ``NNNN_name.sql``: plain DDL, applied in ONE transaction with a short ``lock_timeout``. When a
  table it alters is busy (an app transaction holds it), the transaction gives up and is retried
  with a back-off, instead of queueing every app query behind its lock.
- ``NNNN_name.concurrent.sql``: only ``CREATE [UNIQUE] INDEX CONCURRENTLY IF NOT EXISTS`` and
  ``DROP INDEX CONCURRENTLY IF EXISTS`` statements, run one by one outside any transaction (the
  only way PostgreSQL builds an index without blocking writes). An index that an interrupted build
  left INVALID is dropped and built again; one the app already has in the same shape is reused.

Files are ordered by (version, plain before concurrent, name) and recorded by (version, name), so
two files that happen to share a version number are both applied.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from autosync.errors import MigrationError
from autosync.store import concurrent
from autosync.store.concurrent import IndexStatement

LOCK_KEY = 0x6175746F73796E63  # "autosync"
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)(\.concurrent)?\.sql$")

# Earlier texts of a migration that was rewritten without changing the schema it produces, so a
# database that applied the earlier text shows no drift. 0001 became adoption-safe (tables and
# columns created only when missing, app-table indexes moved to its concurrent part).
EQUIVALENT_CHECKSUMS = {
    "0001_miplanit_schema": {"65da6e132b05686837f207900b5bd502366ab441136cc1909dc98152e6a4a479"},
}

BOOKKEEPING = """CREATE TABLE IF NOT EXISTS autosync_migration (
    version integer NOT NULL,
    name text NOT NULL,
    checksum text NOT NULL,
    "appliedAt" timestamptz NOT NULL DEFAULT now(),
    note text,
    PRIMARY KEY (version, name))"""
# Bookkeeping written by earlier versions (keyed by version alone, without notes).
OLD_BOOKKEEPING_KEY = (
    "SELECT c.conname FROM pg_constraint c WHERE c.conrelid = 'autosync_migration'::regclass "
    "AND c.contype = 'p' AND array_length(c.conkey, 1) = 1"
)
RECORDED = "SELECT * FROM autosync_migration ORDER BY version, name"  # * : the earlier layout has no note
RECORD = "INSERT INTO autosync_migration (version, name, checksum, note) VALUES (%s, %s, %s, %s)"
SCHEMA_COLUMNS = (
    "SELECT c.relname AS tbl, a.attname AS col FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
    "WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = %s) AND c.relkind IN ('r', 'p') "
    "AND a.attnum > 0 AND NOT a.attisdropped"
)
# Foreign keys among some tables of the current schema: (referencing table, referenced table).
FOREIGN_KEYS = (
    "SELECT c.relname, p.relname FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid "
    "JOIN pg_class p ON p.oid = k.confrelid WHERE k.contype = 'f' AND c.relname = ANY(%s) "
    "AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()) "
    "AND p.relname = ANY(%s)"
)


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    sql: str
    concurrent: bool = False

    @property
    def id(self) -> str:
        """The file name without ``.sql``, e.g. ``0001_miplanit_schema.concurrent``."""
        return f"{self.version:04d}_{self.name}{'.concurrent' if self.concurrent else ''}"

    @property
    def recorded_name(self) -> str:
        """The name column of autosync_migration (the kind suffix included)."""
        return self.name + (".concurrent" if self.concurrent else "")

    @property
    def checksum(self) -> str:
        """sha256 of the file, recorded so an edited, already-applied migration is noticed."""
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def matches(self, checksum: str) -> bool:
        """Whether a recorded checksum is this file's (or an equivalent earlier text's)."""
        return checksum == self.checksum or checksum in EQUIVALENT_CHECKSUMS.get(self.id, set())

    @cached_property
    def statements(self) -> tuple[IndexStatement, ...]:
        """The statements of a concurrent migration (validated)."""
        return concurrent.parse(self.id, self.sql) if self.concurrent else ()


def available(source: Path | None = None) -> list[Migration]:
    """Every migration shipped in the package (or found in ``source``), in the order they apply."""
    found = []
    folder = source if source is not None else resources.files("autosync.store").joinpath("migrations")
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match:
            m = Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8"), bool(match[3]))
            m.statements  # noqa: B018  (validate a concurrent file when it is loaded, not half-way through)
            found.append(m)
    return sorted(found, key=lambda m: (m.version, m.concurrent, m.name))


def prepare(conn: psycopg.Connection) -> dict[tuple[int, str], dict]:
    """Create (or bring up to date) the bookkeeping table; returns what it records, by (version, name)."""
    conn.execute(BOOKKEEPING)
    conn.execute("ALTER TABLE autosync_migration ADD COLUMN IF NOT EXISTS note text")
    old = conn.execute(OLD_BOOKKEEPING_KEY).fetchone()
    if old is not None:
        conn.execute(sql.SQL("ALTER TABLE autosync_migration DROP CONSTRAINT {}, ADD PRIMARY KEY (version, name)")
                     .format(sql.Identifier(old[0])))
    return recorded(conn)


def recorded(conn: psycopg.Connection) -> dict[tuple[int, str], dict]:
    """The applied migrations as recorded, by (version, name)."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(RECORDED).fetchall()
    return {(int(r["version"]), str(r["name"])): {"checksum": r["checksum"], "appliedAt": r["appliedAt"],
                                                  "note": r.get("note")} for r in rows}


def upgrade(url: str, report: Callable[[str], None] = print, *, lock_timeout: float = 2.0,
            attempts: int = 20, source: Path | None = None) -> list[str]:
    """Apply pending migrations and repair broken concurrent indexes; returns the ids applied now."""
    migrations = available(source)
    applied_now: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        _lock(conn, report)
        try:
            done = prepare(conn)
            for m in migrations:
                got = done.get((m.version, m.recorded_name))
                if got and not m.matches(got["checksum"]):
                    report(f"warning: migration {m.id} changed after it was applied (see `autosync db status`)")
            pending = [m for m in migrations if (m.version, m.recorded_name) not in done]
            for i, m in enumerate(pending, 1):
                started = time.monotonic()
                report(f"[{i}/{len(pending)}] applying {m.id} ...")
                if m.concurrent:
                    note = concurrent.apply(conn, m.id, m.statements, report)
                    conn.execute(RECORD, (m.version, m.recorded_name, m.checksum, note or None))
                else:
                    note = _apply_plain(conn, m, report, lock_timeout, attempts)
                report(f"[{i}/{len(pending)}] applied {m.id} in {time.monotonic() - started:.2f}s"
                       + (f": {note}" if note else ""))
                applied_now.append(m.id)
            repaired = _repair(conn, [m for m in migrations if m.concurrent and m not in pending], report)
            if not pending and not repaired:
                latest = migrations[-1].id if migrations else "none"
                report(f"database is up to date at {latest}; nothing to do")
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    return applied_now


def _lock(conn: psycopg.Connection, report: Callable[[str], None]) -> None:
    """Take the upgrade lock, polling: a session blocked inside pg_advisory_lock() is a transaction a
    concurrent index build of the upgrade holding the lock would wait for, a deadlock."""
    said = False
    while not conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()[0]:  # type: ignore[index]
        if not said:
            report("another `autosync db upgrade` is running on this database; waiting for it ...")
            said = True
        time.sleep(0.25)


def table_columns(conn: psycopg.Connection, schema: str | None = None) -> dict[str, set[str]]:
    """Column names per table of a schema (the current one by default)."""
    schema = schema or conn.execute("SELECT current_schema()").fetchone()[0]  # type: ignore[index]
    out: dict[str, set[str]] = {}
    for table, column in conn.execute(SCHEMA_COLUMNS, (schema,)).fetchall():
        out.setdefault(table, set()).add(column)
    return out


def describe_change(before: dict[str, set[str]], after: dict[str, set[str]]) -> str:
    """What a plain migration did to tables: created, adopted (existing, kept), columns added."""
    created = sorted(set(after) - set(before))
    grown = {t: len(after[t] - before[t]) for t in sorted(before) if t in after and after[t] - before[t]}
    parts = []
    if created:
        parts.append(f"created {', '.join(created)}")
    if grown:
        parts.append("added columns to " + ", ".join(f"{t} ({n})" for t, n in grown.items()))
    return "; ".join(parts)


def _apply_plain(conn: psycopg.Connection, m: Migration, report: Callable[[str], None], lock_timeout: float,
                 attempts: int) -> str:
    """One transaction; when a lock is not granted in time, roll back and try again later."""
    for attempt in range(1, attempts + 1):
        try:
            with conn.transaction():
                conn.execute("SELECT set_config('lock_timeout', %s, true)", (f"{int(lock_timeout * 1000)}ms",))
                before = table_columns(conn)
                busy = lock_order(conn, tables_touched(m.sql) & set(before))
                if busy:
                    # Every lock up front, so none is waited for half-way (holding others), and in
                    # the order the app's own writes take them: a row's table before the tables
                    # its foreign keys check. A migration that took calendar and then waited for
                    # cal_event would deadlock with an app INSERT INTO cal_event checking calendar.
                    conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                        sql.SQL(", ").join(sql.Identifier(t) for t in busy)))
                kept = sorted(t for t in before if t in _tables_named(m.sql))
                conn.execute(m.sql.encode())  # type: ignore[call-overload]
                note = describe_change(before, table_columns(conn))
                if kept:
                    note = f"adopted existing tables {', '.join(kept)}" + (f"; {note}" if note else "")
                conn.execute(RECORD, (m.version, m.recorded_name, m.checksum, note or None))
            return note
        except psycopg.errors.LockNotAvailable as exc:
            if attempt == attempts:
                raise MigrationError(f"{m.id}: a table it alters stayed locked by other transactions through "
                                     f"{attempts} attempts ({exc.diag.message_primary}); nothing of it was "
                                     "applied. Find long transactions in pg_stat_activity and run it again") from None
            wait = min(10.0, 0.5 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            report(f"  {m.id}: a table it alters is busy (no lock within {lock_timeout:g}s); rolled back, "
                   f"attempt {attempt + 1}/{attempts} in {wait:.1f}s")
            time.sleep(wait)
    raise AssertionError("unreachable")


_TOUCH = re.compile(r'\b(?:ALTER\s+TABLE(?:\s+IF\s+EXISTS)?(?:\s+ONLY)?|REFERENCES|ON|UPDATE|INSERT\s+INTO|'
                    r'DELETE\s+FROM|TRUNCATE(?:\s+TABLE)?)\s+"?(\w+)"?', re.I)


def tables_touched(text: str) -> set[str]:
    """Tables a migration may lock: altered, given triggers or indexes, referenced by new keys, written."""
    return {t.lower() for t in _TOUCH.findall(concurrent.strip_comments(text))}


def lock_order(conn: psycopg.Connection, tables: set[str]) -> list[str]:
    """``tables`` with every table before the tables its foreign keys reference (children first)."""
    edges = conn.execute(FOREIGN_KEYS, (sorted(tables), sorted(tables))).fetchall()
    parents: dict[str, set[str]] = {t: set() for t in tables}
    for child, parent in edges:
        if child != parent:
            parents[child].add(parent)
    order: list[str] = []
    while parents:
        # A table no remaining table references goes first (cycles: the alphabetically first).
        referenced = {p for ps in parents.values() for p in ps if p in parents}
        ready = sorted(t for t in parents if t not in referenced) or sorted(parents)[:1]
        for t in ready:
            order.append(t)
            del parents[t]
    return order


def _tables_named(text: str) -> set[str]:
    """Tables a migration creates with IF NOT EXISTS (to tell adopted tables from created ones)."""
    return {t.lower() for t in re.findall(r"CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+(\w+)", text, re.I)}


def _repair(conn: psycopg.Connection, applied: list[Migration], report: Callable[[str], None]) -> bool:
    """Build again the indexes of applied concurrent migrations that were dropped or left INVALID."""
    repaired = False
    for m in applied:
        broken = concurrent.broken(conn, m.statements)
        if broken:
            report(f"repairing {m.id}: " + ", ".join(f"{name} is {what}" for name, what in broken))
            concurrent.apply(conn, m.id, m.statements, report)
            repaired = True
    return repaired

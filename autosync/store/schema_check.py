"""`autosync db status`: applied and pending migrations, and drift between the database and them.

Drift is anything an applied migration should have left that is not there now: a migration file
changed after it was applied, a table lacking a column (or an index, or a trigger) autosync needs,
an index left INVALID by an interrupted concurrent build, or a recorded migration this version does
not ship. What "needs" means is not kept in a hand-written list: the applied plain migrations are
replayed into an empty scratch schema inside a transaction that is rolled back, and the real schema
is compared with what they produce there.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from autosync.store import concurrent, migrate

TRIGGERS = (
    "SELECT c.relname AS tbl, t.tgname AS name FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
    "WHERE NOT t.tgisinternal AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = %s)"
)
# Indexes by name, leaving out those behind a primary key or unique constraint: the app's own tables
# may name those differently, and what they guarantee is checked where it matters (the concurrent part).
INDEXES = (
    "SELECT t.relname AS tbl, ic.relname AS name FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid "
    "JOIN pg_class t ON t.oid = i.indrelid WHERE t.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = %s) "
    "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)"
)


@dataclass(frozen=True)
class Entry:
    """One migration and its state: applied or pending."""

    id: str
    state: str
    applied_at: datetime | None = None
    note: str | None = None


@dataclass
class Status:
    """What `db status` prints."""

    entries: list[Entry] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # checks that could not run, and why

    @property
    def pending(self) -> list[Entry]:
        """Migrations not applied yet."""
        return [e for e in self.entries if e.state == "pending"]

    @property
    def ok(self) -> bool:
        """Nothing pending, nothing drifted."""
        return not self.pending and not self.drift

    def as_dict(self) -> dict[str, Any]:
        """For --json."""
        return {"ok": self.ok, "migrations": [e.__dict__ for e in self.entries], "drift": self.drift,
                "notes": self.notes}


def status(url: str, source: Path | None = None) -> Status:
    """Compare the database with the shipped migrations (reads only; the scratch schema is rolled back)."""
    migrations = migrate.available(source)
    out = Status()
    with psycopg.connect(url, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('autosync_migration') IS NOT NULL").fetchone()
        done = migrate.recorded(conn) if exists and exists[0] else {}
        if done and "note" not in _bookkeeping_columns(conn):
            out.notes.append("the bookkeeping table has the earlier layout; `autosync db upgrade` updates it")
        shipped = {(m.version, m.recorded_name): m for m in migrations}
        for m in migrations:
            got = done.get((m.version, m.recorded_name))
            if got is None:
                out.entries.append(Entry(m.id, "pending"))
                continue
            out.entries.append(Entry(m.id, "applied", got["appliedAt"], got["note"]))
            if not m.matches(got["checksum"]):
                out.drift.append(f"{m.id}: the file changed after it was applied "
                                 f"(recorded checksum {got['checksum'][:12]}…, file {m.checksum[:12]}…)")
        for m in migrations:
            applied = (m.version, m.recorded_name) in done
            for name, what in concurrent.broken(conn, m.statements, applied=applied):
                out.drift.append(f"index {name} is {what}"
                                 + (" (left by an interrupted concurrent build)" if what == "INVALID" else "")
                                 + ": `autosync db upgrade` builds it again")
        for version, name in sorted(set(done) - set(shipped)):
            out.drift.append(f"{version:04d}_{name}: applied, but this version of autosync does not ship it "
                             "(a newer release, or a renamed file)")
        applied_plain = [m for m in migrations if not m.concurrent and (m.version, m.recorded_name) in done]
        if applied_plain:
            _compare_schema(conn, applied_plain, out)
    return out


def _bookkeeping_columns(conn: psycopg.Connection) -> set[str]:
    return migrate.table_columns(conn).get("autosync_migration", set())


def _snapshot(conn: psycopg.Connection, schema: str) -> dict[str, set[tuple[str, str]]]:
    columns = {(t, c) for t, cols in migrate.table_columns(conn, schema).items() for c in cols}
    return {"column": columns,
            "index": {(r[0], r[1]) for r in conn.execute(INDEXES, (schema,)).fetchall()},
            "trigger": {(r[0], r[1]) for r in conn.execute(TRIGGERS, (schema,)).fetchall()}}


def _compare_schema(conn: psycopg.Connection, applied: list[migrate.Migration], out: Status) -> None:
    """Replay the applied plain migrations in a scratch schema; report what the real schema lacks."""
    real_schema = conn.execute("SELECT current_schema()").fetchone()[0]  # type: ignore[index]
    real = _snapshot(conn, real_schema)
    scratch = f"autosync_check_{secrets.token_hex(6)}"
    expected: dict[tuple[str, str, str], str] = {}  # (kind, table, name) -> the migration that adds it
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(scratch)))
            conn.execute("SELECT set_config('search_path', %s, true)", (scratch,))
            seen: dict[str, set[tuple[str, str]]] = {"column": set(), "index": set(), "trigger": set()}
            for m in applied:
                conn.execute(m.sql.encode())  # type: ignore[call-overload]
                now = _snapshot(conn, scratch)
                for kind, items in now.items():
                    for table, name in items - seen[kind]:
                        expected[(kind, table, name)] = m.id
                seen = now
    except psycopg.Error as exc:
        out.notes.append(f"columns, indexes and triggers not checked: {exc.diag.message_primary or exc}")
        return
    for (kind, table, name), origin in sorted(expected.items()):
        if (table, name) in real[kind] or (table, name) not in seen[kind]:
            continue  # present, or removed again by a later migration (e.g. 0005 drops push_channel.secret)
        if kind == "column" and not any(t == table for t, _ in real["column"]):
            out.drift.append(f"table {table} is missing (added by {origin})")
        elif kind == "column":
            out.drift.append(f'table {table} lacks column "{name}" (added by {origin})')
        elif any(t == table for t, _ in real["column"]):
            out.drift.append(f"{kind} {name} on {table} is missing (added by {origin})")
    # One line per missing table, not one per column of it.
    out.drift[:] = list(dict.fromkeys(out.drift))

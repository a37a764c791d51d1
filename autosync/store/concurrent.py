"""Concurrent index migrations (``NNNN_name.concurrent.sql``): parsed, built outside any transaction, repaired.

PostgreSQL builds an index without blocking writes only with CREATE INDEX CONCURRENTLY, which cannot
run inside a transaction (https://www.postgresql.org/docs/current/sql-createindex.html). Such a
build that fails or is interrupted leaves an INVALID index behind that IF NOT EXISTS would then
happily keep, so each index is checked by name first: valid is kept, INVALID is dropped and built
again, absent is built unless the table already has a valid index of the same shape under another
name (the app's own unique constraint, typically).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

import psycopg
from psycopg import sql

from autosync.errors import MigrationError

_CREATE = re.compile(r"^CREATE\s+(UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+IF\s+NOT\s+EXISTS\s+(\w+)\s+ON\s+(\w+)\s*(.*)$",
                     re.S | re.I)
_DROP = re.compile(r"^DROP\s+INDEX\s+CONCURRENTLY\s+IF\s+EXISTS\s+(\w+)$", re.I)
_PLAIN_COLUMNS = re.compile(r'^\(\s*("?\w+"?(?:\s*,\s*"?\w+"?)*)\s*\)$')

INDEX_STATE = (
    "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
    "WHERE c.relname = %s AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())"
)
# A valid b-tree index on exactly these key columns, without predicate or expressions (unique if asked).
EQUIVALENT_INDEX = (
    "SELECT ic.relname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid "
    "JOIN pg_class t ON t.oid = i.indrelid JOIN pg_am am ON am.oid = ic.relam "
    "WHERE t.relname = %(table)s AND t.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()) "
    "AND am.amname = 'btree' AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL "
    "AND (i.indisunique OR NOT %(unique)s) "
    "AND ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord) "
    "          JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum "
    "          WHERE k.ord <= i.indnkeyatts ORDER BY k.ord) = %(columns)s::text[] "
    "ORDER BY i.indisunique DESC, ic.relname LIMIT 1"
)


@dataclass(frozen=True)
class IndexStatement:
    """One statement of a concurrent migration."""

    sql: str
    name: str
    drop: bool = False
    table: str = ""
    unique: bool = False
    columns: tuple[str, ...] | None = None  # a plain column list (None: partial or expression index)


def strip_comments(text: str) -> str:
    """SQL without ``--`` comments (migration files keep no ``--`` inside strings)."""
    return "\n".join(line.split("--", 1)[0] for line in text.splitlines())


def parse(file_id: str, text: str) -> tuple[IndexStatement, ...]:
    """Split a concurrent migration into index statements; anything else is refused."""
    out = []
    for raw in strip_comments(text).split(";"):
        stmt = " ".join(raw.split())
        if not stmt:
            continue
        if drop := _DROP.match(stmt):
            out.append(IndexStatement(stmt, drop[1].lower(), drop=True))
            continue
        create = _CREATE.match(stmt)
        if create is None:
            raise MigrationError(f"{file_id}: a .concurrent.sql file holds only 'CREATE [UNIQUE] INDEX CONCURRENTLY "
                                 f"IF NOT EXISTS' and 'DROP INDEX CONCURRENTLY IF EXISTS' statements, not: {stmt[:80]}")
        cols = _PLAIN_COLUMNS.match(create[4].strip())
        columns = tuple(c.strip().strip('"') for c in cols[1].split(",")) if cols else None
        out.append(IndexStatement(stmt, create[2].lower(), table=create[3], unique=bool(create[1]), columns=columns))
    return tuple(out)


def index_state(conn: psycopg.Connection, name: str) -> bool | None:
    """True: the index exists and is valid; False: INVALID (an interrupted build); None: absent."""
    row = conn.execute(INDEX_STATE, (name,)).fetchone()
    return None if row is None else bool(row[0])


def covering_index(conn: psycopg.Connection, st: IndexStatement) -> str | None:
    """An existing index of another name with the same shape (e.g. the app's own unique constraint)."""
    if st.columns is None:
        return None
    row = conn.execute(EQUIVALENT_INDEX, {"table": st.table, "unique": st.unique,
                                          "columns": list(st.columns)}).fetchone()
    return str(row[0]) if row and row[0] != st.name else None


def _drop(conn: psycopg.Connection, name: str) -> None:
    conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(name)))


def apply(conn: psycopg.Connection, file_id: str, statements: tuple[IndexStatement, ...],
          report: Callable[[str], None]) -> str:
    """Run each statement on its own on an autocommit connection; returns what was done, for the record."""
    # A concurrent build waits for transactions that started before it; it blocks no app query while
    # it waits, so no lock_timeout (it would abort builds on a busy database for nothing).
    conn.execute("SELECT set_config('lock_timeout', '0', false)")
    notes = []
    for st in statements:
        if st.drop:
            conn.execute(st.sql.encode())  # type: ignore[call-overload]
            continue
        state = index_state(conn, st.name)
        if state is True:
            continue
        if state is False:
            report(f"  {st.name} is INVALID (left by an interrupted build): dropping and building it again")
            _drop(conn, st.name)
        elif cover := covering_index(conn, st):
            notes.append(f"{st.name} not built: the existing index {cover} covers it")
            continue
        started = time.monotonic()
        try:
            conn.execute(st.sql.encode())  # type: ignore[call-overload]
        except psycopg.Error as exc:
            with suppress(psycopg.Error):
                _drop(conn, st.name)  # a failed concurrent build leaves an INVALID index behind
            hint = ("remove the duplicate rows it names, then run `autosync db upgrade` again"
                    if isinstance(exc, psycopg.errors.UniqueViolation) else "run `autosync db upgrade` again")
            detail = exc.diag.message_detail or ""
            raise MigrationError(f"{file_id}: building index {st.name} failed: {exc.diag.message_primary or exc}"
                                 f"{' (' + detail + ')' if detail else ''}; {hint}") from None
        notes.append(f"built {st.name} in {time.monotonic() - started:.2f}s")
    return "; ".join(notes)


def broken(conn: psycopg.Connection, statements: tuple[IndexStatement, ...], *,
           applied: bool = True) -> list[tuple[str, str]]:
    """Indexes the statements create that are INVALID now (and, once applied, missing): (name, what)."""
    out = []
    for st in statements:
        if st.drop:
            continue
        state = index_state(conn, st.name)
        if state is False:
            out.append((st.name, "INVALID"))
        elif state is None and applied and covering_index(conn, st) is None:
            out.append((st.name, "missing"))
    return out

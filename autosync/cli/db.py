"""`autosync db upgrade|status`: create, adopt and check the schema."""

from __future__ import annotations

import argparse
import json
from typing import Any

from autosync.cli.common import EXIT_OK, EXIT_PROBLEM, load_settings, positive_int, timeout_seconds


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """Create the schema, or adopt and upgrade an existing MiPlanIt database."""
    from autosync.store.migrate import upgrade

    upgrade(args.database_url or load_settings().database_url, report=lambda line: print(line, flush=True),
            lock_timeout=args.lock_timeout, attempts=args.attempts)
    return EXIT_OK


def cmd_db_status(args: argparse.Namespace) -> int:
    """Applied and pending migrations, and drift; non-zero when something is pending or drifted."""
    from autosync.store.schema_check import status

    report = status(args.database_url or load_settings().database_url)
    if args.json:
        print(json.dumps(report.as_dict(), default=str, indent=2))
        return EXIT_OK if report.ok else EXIT_PROBLEM
    for e in report.entries:
        when = e.applied_at.strftime("%Y-%m-%d %H:%M:%S") if e.applied_at else ""
        print(f"{e.state:<8} {e.id:<40} {when:<19} {e.note or ''}".rstrip())
    for line in report.drift:
        print(f"drift    {line}")
    for line in report.notes:
        print(f"note     {line}")
    applied = len(report.entries) - len(report.pending)
    verdict = "up to date" if report.ok else "run `autosync db upgrade`" if not report.drift else "needs attention"
    print(f"{applied} applied, {len(report.pending)} pending, {len(report.drift)} drift: {verdict}")
    return EXIT_OK if report.ok else EXIT_PROBLEM


def add_db(sub: Any) -> None:
    """`autosync db upgrade|status`."""
    db = sub.add_parser("db", help="database schema: upgrade, status",
                        description="Create, adopt and check the schema autosync shares with the MiPlanIt app.")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="SUBCOMMAND")
    up = db_sub.add_parser(
        "upgrade", help="create the schema, or adopt an existing MiPlanIt database, and apply pending migrations",
        description="Apply pending migrations: on an empty database it creates everything; on the app's "
                    "database it keeps existing tables and rows and adds what autosync needs. Safe to run "
                    "twice, concurrently, and while the app writes (short lock waits, retried; indexes on "
                    "app tables built CONCURRENTLY). Also rebuilds indexes left INVALID.")
    up.add_argument("--database-url", metavar="URL", help="database to upgrade (default AUTOSYNC_DATABASE_URL)")
    up.add_argument("--lock-timeout", type=timeout_seconds, default=2.0, metavar="SECONDS",
                    help="longest the app's queries may queue behind a migration's lock; then it rolls back "
                         "and retries (default 2)")
    up.add_argument("--attempts", type=positive_int, default=20, metavar="N",
                    help="tries per migration before giving up on a busy table (default 20)")
    up.set_defaults(func=cmd_db_upgrade, needs=("database",))
    st = db_sub.add_parser(
        "status", help="applied and pending migrations, and drift (exit 1 when pending or drifted)",
        description="List applied and pending migrations and any drift: a migration changed after it was "
                    "applied, a table lacking a column, index or trigger autosync needs, an INVALID index. "
                    "Exits 1 when something is pending or drifted, so it works as a deploy check.")
    st.add_argument("--database-url", metavar="URL", help="database to check (default AUTOSYNC_DATABASE_URL)")
    st.add_argument("--json", action="store_true", help="print JSON instead of a table")
    st.set_defaults(func=cmd_db_status, needs=("database",))

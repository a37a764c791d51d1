"""Helpers for end-to-end tests: link emulator accounts to MiPlanIt calendars, run syncs, read rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg


@dataclass
class Linked:
    """A MiPlanIt user with one linked external calendar."""

    user_id: int
    calendar_id: int
    account_id: str
    ext_calendar_id: str
    refresh_token: str


def link(db: psycopg.Connection, emu: Any, provider: str, email: str = "alice@example.com") -> Linked:
    """Create an emulator account and the user_main + calendar rows the app would create."""
    acct = emu.create_account(provider, email)
    user = db.execute('INSERT INTO user_main (email, "firstName") VALUES (%s, %s) RETURNING "userId"',
                      (email, email.split("@")[0])).fetchone()
    assert user is not None
    cal = db.execute(
        'INSERT INTO calendar ("userId", "calendarType", "extCalendarId", "socialAccountId", "refreshToken", status) '
        'VALUES (%s, %s, %s, %s, %s, true) RETURNING "calendarId"',
        (user[0], 1 if provider == "google" else 2, acct["calendar_id"], acct["account_id"], acct["refresh_token"]),
    ).fetchone()
    assert cal is not None
    return Linked(user[0], cal[0], acct["account_id"], acct["calendar_id"], acct["refresh_token"])


def sync(user_id: int, *, timeout: float = 30, calendar_type: int | None = None) -> dict[str, Any]:
    """Enqueue an ad-hoc sync through the broker and wait for it; returns the summary."""
    from autosync.services import adhoc

    request_id = adhoc.enqueue(user_id, calendar_type)
    summary = adhoc.wait(request_id, timeout)
    assert summary["done"], summary
    return summary


def events(db: psycopg.Connection, calendar_id: int, *, live_only: bool = False) -> dict[str, dict[str, Any]]:
    """cal_event rows of a calendar keyed by extEventId."""
    with db.cursor(row_factory=psycopg.rows.dict_row) as cur:
        rows = cur.execute('SELECT * FROM cal_event WHERE "calendarId" = %s AND (status OR NOT %s)',
                           (calendar_id, live_only)).fetchall()
    return {r["extEventId"]: r for r in rows}


def run_rows(db: psycopg.Connection, calendar_id: int) -> list[dict[str, Any]]:
    """sync_run rows of a calendar, oldest first."""
    with db.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute('SELECT * FROM sync_run WHERE "calendarId" = %s ORDER BY "runId"', (calendar_id,)).fetchall()

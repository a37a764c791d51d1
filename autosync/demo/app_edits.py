"""Demo edits on the app side: the SQL the MiPlanIt app runs on cal_event and the share tables."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any

import psycopg
from psycopg import sql as q

from autosync.demo.provider_edits import new_name, renamed

Conn = psycopg.Connection[dict[str, Any]]

# Synced one-off events of a calendar (series and their instances are left to the provider side).
CANDIDATES = (
    'SELECT e."eventId", e."extEventId", e."eventName", e."startDate", e."startTime", e."endDate", '
    'e."endTime", e."linkAllDay" FROM cal_event e WHERE e."calendarId" = %s AND e.status '
    'AND e."extEventId" IS NOT NULL AND e.recurrence IS NULL AND e."recurringEventId" IS NULL '
    'ORDER BY e."eventId"'
)


class AppEdits:
    """Inserts, renames, moves, deletes and shares events of one linked calendar, as the app does."""

    def __init__(self, conn: Conn, rng: random.Random, cycle: int, touched: set[str]) -> None:
        self.conn = conn
        self.rng = rng
        self.cycle = cycle
        self.touched = touched

    def run(self, calendar: dict[str, Any], label: str) -> str:
        """One random app-side edit on the calendar; returns a line saying what was done."""
        ops: dict[str, Callable[[dict[str, Any]], str | None]] = {
            "insert": self.insert, "rename": self.rename, "move": self.move, "cancel": self.cancel,
            "delete": self.delete, "share": self.share, "invite": self.invite}
        kind = self.rng.choices(list(ops), weights=(3, 3, 2, 1, 1, 1, 1))[0]
        done = ops[kind](calendar) or self.insert(calendar)
        return f"app {label}: {done}"

    def _pick(self, calendar: dict[str, Any], timed_only: bool = False) -> dict[str, Any] | None:
        rows = self.conn.execute(CANDIDATES, (calendar["calendarId"],)).fetchall()
        free = [r for r in rows if r["extEventId"] not in self.touched and not (timed_only and r["linkAllDay"])]
        if not free:
            return None
        chosen = self.rng.choice(free)
        self.touched.add(chosen["extEventId"])
        return chosen

    def insert(self, calendar: dict[str, Any]) -> str:
        """INSERT a new event with no extEventId (timed in UTC, sometimes all-day)."""
        name = new_name(self.rng, self.cycle)
        day = datetime.now(UTC).date() + timedelta(days=self.rng.randint(1, 60))
        values: dict[str, Any] = {"calendarId": calendar["calendarId"], "createdBy": calendar["userId"],
                                  "eventName": name, "description": "Added in MiPlanIt"}
        if self.rng.random() < 0.2:
            last = day + timedelta(days=self.rng.randint(0, 2))
            values |= {"startDate": day, "endDate": last, "linkAllDay": True}
            when = f"all-day {day}..{last}"
        else:
            start = datetime.combine(day, time(self.rng.randint(6, 18), self.rng.choice((0, 30))))
            end = start + timedelta(minutes=self.rng.choice((30, 60)))
            values |= {"startDate": start.date(), "startTime": start.time(), "endDate": end.date(),
                       "endTime": end.time()}
            if self.rng.random() < 0.5:
                values |= {"startTimeZone": "Europe/Berlin", "endTimeZone": "Europe/Berlin"}
            when = f"{start:%Y-%m-%d %H:%M}Z"
        stmt = q.SQL('INSERT INTO cal_event ({}) VALUES ({}) RETURNING "eventId"').format(
            q.SQL(", ").join(q.Identifier(k) for k in values), q.SQL(", ").join(q.Placeholder() for _ in values))
        row = self.conn.execute(stmt, list(values.values())).fetchone()
        assert row is not None
        return f"inserted '{name}' ({when}, eventId {row['eventId']})"

    def rename(self, calendar: dict[str, Any]) -> str | None:
        """UPDATE the name of a synced event."""
        row = self._pick(calendar)
        if row is None:
            return None
        name = renamed(row["eventName"], self.cycle)
        self.conn.execute('UPDATE cal_event SET "eventName" = %s WHERE "eventId" = %s', (name, row["eventId"]))
        return f"renamed '{row['eventName']}' -> '{name}'"

    def move(self, calendar: dict[str, Any]) -> str | None:
        """UPDATE the UTC start/end of a synced timed event."""
        row = self._pick(calendar, timed_only=True)
        if row is None:
            return None
        shift = self.rng.choice((timedelta(hours=1), timedelta(hours=3), timedelta(days=1)))
        start = datetime.combine(row["startDate"], row["startTime"]) + shift
        end = datetime.combine(row["endDate"] or row["startDate"], row["endTime"] or row["startTime"]) + shift
        self.conn.execute('UPDATE cal_event SET "startDate" = %s, "startTime" = %s, "endDate" = %s, '
                          '"endTime" = %s WHERE "eventId" = %s',
                          (start.date(), start.time(), end.date(), end.time(), row["eventId"]))
        return f"moved '{row['eventName']}' to {start:%Y-%m-%d %H:%M}Z"

    def cancel(self, calendar: dict[str, Any]) -> str | None:
        """UPDATE status = false: the app's soft delete."""
        row = self._pick(calendar)
        if row is None:
            return None
        self.conn.execute('UPDATE cal_event SET status = false WHERE "eventId" = %s', (row["eventId"],))
        return f"marked '{row['eventName']}' deleted (status=false)"

    def delete(self, calendar: dict[str, Any]) -> str | None:
        """DELETE the row: the app's hard delete."""
        row = self._pick(calendar)
        if row is None:
            return None
        self.conn.execute('DELETE FROM cal_event WHERE "eventId" = %s', (row["eventId"],))
        return f"deleted '{row['eventName']}' (row removed)"

    def share(self, calendar: dict[str, Any]) -> str | None:
        """Share an event with another registered (demo) user: a new attendee."""
        row = self._pick(calendar)
        if row is None:
            return None
        other = self.conn.execute(
            'SELECT u."userId", u.email FROM user_main u WHERE u.email LIKE %s AND u."userId" <> %s '
            'AND NOT EXISTS (SELECT 1 FROM cal_event_share s WHERE s."eventId" = %s AND s."sharedUser" = u."userId") '
            'ORDER BY u."userId"', ("%@" + calendar["email"].split("@", 1)[1], calendar["userId"],
                                   row["eventId"])).fetchall()
        if not other:
            return None
        who = self.rng.choice(other)
        self.conn.execute('INSERT INTO cal_event_share ("eventId", "sharedUser", "sharedStatus") VALUES (%s, %s, %s)',
                          (row["eventId"], who["userId"], self.rng.choice((0, 1, 3))))
        return f"shared '{row['eventName']}' with {who['email']}"

    def invite(self, calendar: dict[str, Any]) -> str | None:
        """Invite a non-registered e-mail to an event (non_reg_user_share)."""
        row = self._pick(calendar)
        if row is None:
            return None
        email = f"guest{self.rng.randint(1, 99)}@example.org"
        self.conn.execute('INSERT INTO non_reg_user_share ("activityId", "activityType", email) VALUES (%s, 2, %s)',
                          (row["eventId"], email))
        return f"invited {email} to '{row['eventName']}'"


def conflict(conn: Conn, calendar: dict[str, Any], cycle: int, rng: random.Random, touched: set[str],
             provider_rename: Callable[[str, str], None]) -> str | None:
    """Rename one synced event on both sides before the next sync: a conflict for the policy to settle."""
    rows = [r for r in conn.execute(CANDIDATES, (calendar["calendarId"],)).fetchall()
            if r["extEventId"] not in touched]
    if not rows:
        return None
    row = rng.choice(rows)
    touched.add(row["extEventId"])
    theirs, ours = renamed(row["eventName"], cycle) + " (provider)", renamed(row["eventName"], cycle) + " (app)"
    provider_rename(row["extEventId"], theirs)
    conn.execute('UPDATE cal_event SET "eventName" = %s WHERE "eventId" = %s', (ours, row["eventId"]))
    return f"renamed '{row['eventName']}' on both sides: '{theirs}' vs '{ours}'"


"""Demo data set: seed the emulator with demo users' Google and Outlook calendars and link them in PostgreSQL."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from autosync.emulator.client import EmulatorClient
from autosync.emulator.generator import DEFAULT_ZONES, generate_google_events, google_account
from autosync.emulator.generator_outlook import generate_outlook_events

DOMAIN = "demo.miplanit.test"
PROVIDERS = (("google", 1), ("outlook", 2))
# The generators spread events -60..+180 days around "now"; shifting "now" 35 days ahead keeps every
# generated event inside autosync's sync window (28 days back, 365 ahead).
GENERATOR_SHIFT = timedelta(days=35)

# Columns reset when a calendar is linked to a fresh emulator account (as if re-authorized from scratch).
RELINK = (
    'UPDATE calendar SET "extCalendarId" = %(ext)s, "socialAccountId" = %(acct)s, "refreshToken" = %(rt)s, '
    'token = NULL, "accessTokenExpirationDate" = NULL, "lastSyncDate" = NULL, "deltaLink" = NULL, '
    'status = true, "needsReauth" = false, "reauthReason" = NULL, "reauthAt" = NULL, '
    '"reauthTokenHash" = NULL, "syncWindowStart" = NULL, "syncWindowEnd" = NULL, "cursorUpdatedAt" = NULL, '
    '"deactivatedReason" = NULL, "lastOutcome" = NULL, "lastError" = NULL, "calendarName" = %(name)s '
    'WHERE "calendarId" = %(id)s'
)
LINK = (
    'INSERT INTO calendar ("userId", "calendarType", "calendarName", "extCalendarId", "socialAccountId", '
    '"refreshToken", status) VALUES (%(user)s, %(type)s, %(name)s, %(ext)s, %(acct)s, %(rt)s, true) '
    'RETURNING "calendarId"'
)


@dataclass(frozen=True)
class DemoUser:
    """One demo user: its number, e-mail and per-provider emulator account ids."""

    number: int
    email: str
    time_zone: str

    def account_id(self, provider: str) -> str:
        """The emulator account id of this user's account at ``provider``."""
        return f"demo-{provider}-{self.number:02d}"


def demo_users(count: int) -> list[DemoUser]:
    """The first ``count`` demo users (stable e-mails and account ids)."""
    return [DemoUser(i, f"demo{i:02d}@{DOMAIN}", DEFAULT_ZONES[(i - 1) % len(DEFAULT_ZONES)])
            for i in range(1, count + 1)]


def connect(database_url: str) -> psycopg.Connection[dict[str, Any]]:
    """An autocommit connection returning dict rows."""
    return psycopg.connect(database_url, autocommit=True, row_factory=dict_row)


def seed_emulator(client: EmulatorClient, users: list[DemoUser], per_calendar: int, seed: int,
                  now: datetime | None = None) -> tuple[dict[str, dict[str, Any]], int, set[str]]:
    """Create the demo accounts the emulator lacks, with generated events.

    Returns (emulator accounts by account id, events created, ids of the accounts created now).
    """
    known = _accounts(client)
    missing = [u for u in users if any(u.account_id(p) not in known for p, _ in PROVIDERS)]
    if not missing:
        return known, 0, set()
    around = (now or datetime.now(UTC)) + GENERATOR_SHIFT
    accounts: list[dict[str, Any]] = []
    created = 0
    for user in missing:
        rng = random.Random(f"{seed}:{user.number}")
        google_events = generate_google_events(rng, per_calendar, now=around, owner=user.email)
        outlook_events = generate_outlook_events(rng, per_calendar, now=around)
        created += len(google_events) + len(outlook_events)
        if user.account_id("google") not in known:
            accounts.append(google_account(user.account_id("google"), user.email, "", google_events,
                                           user.time_zone) | {"refresh_token": None})
        if user.account_id("outlook") not in known:
            accounts.append({"provider": "outlook", "account_id": user.account_id("outlook"), "email": user.email,
                             "calendars": [{"name": "Calendar", "events": outlook_events}]})
    client.seed({"accounts": accounts})
    return _accounts(client), created, {a["account_id"] for a in accounts}


def _accounts(client: EmulatorClient) -> dict[str, dict[str, Any]]:
    """Emulator accounts by id: provider, refresh_token, calendar_id (primary), time_zone."""
    out = {}
    for acct in client.state().get("accounts") or []:
        cals = acct.get("calendars") or [{}]
        primary = next((c for c in cals if c.get("primary")), cals[0])
        out[acct["account_id"]] = {"provider": acct["provider"], "refresh_token": acct.get("refresh_token"),
                                   "calendar_id": primary.get("calendar_id"),
                                   "time_zone": primary.get("time_zone")}
    return out


def link_users(conn: psycopg.Connection[dict[str, Any]], users: list[DemoUser],
               accounts: dict[str, dict[str, Any]], fresh: set[str]) -> dict[str, int]:
    """user_main + calendar rows for the demo users, as the app creates them; re-link on a fresh emulator.

    Existing demo users (found by e-mail) are reused. Their calendars are re-pointed at the emulator
    accounts when those were just created (``fresh``: a new emulator) or the row points elsewhere:
    cursors and tokens are reset and the old imported rows are removed as autosync's own write, so
    nothing is pushed back.
    """
    counts = {"users_created": 0, "users_reused": 0, "calendars_linked": 0, "calendars_relinked": 0}
    wanted: list[int] = []
    for user in users:
        user_id, new = _user(conn, user)
        counts["users_created" if new else "users_reused"] += 1
        for provider, kind in PROVIDERS:
            acct = accounts[user.account_id(provider)]
            cal_id, outcome = _calendar(conn, user_id, kind, user, provider, acct,
                                        user.account_id(provider) in fresh)
            wanted.append(cal_id)
            if outcome:
                counts[outcome] += 1
    counts["calendars_deactivated"] = _deactivate_others(conn, wanted)
    return counts


def _user(conn: psycopg.Connection[dict[str, Any]], user: DemoUser) -> tuple[int, bool]:
    row = conn.execute('SELECT "userId" FROM user_main WHERE lower(email) = lower(%s) ORDER BY "userId" LIMIT 1',
                       (user.email,)).fetchone()
    if row is not None:
        return int(row["userId"]), False
    row = conn.execute('INSERT INTO user_main (email, "firstName", "lastName") VALUES (%s, %s, %s) '
                       'RETURNING "userId"', (user.email, "Demo", f"User {user.number:02d}")).fetchone()
    assert row is not None
    return int(row["userId"]), True


def _calendar(conn: psycopg.Connection[dict[str, Any]], user_id: int, kind: int, user: DemoUser, provider: str,
              acct: dict[str, Any], fresh: bool) -> tuple[int, str | None]:
    params = {"user": user_id, "type": kind, "ext": acct["calendar_id"], "acct": user.account_id(provider),
              "rt": acct["refresh_token"], "name": f"{user.email} ({provider})"}
    row = conn.execute('SELECT "calendarId", "extCalendarId", "socialAccountId", status FROM calendar '
                       'WHERE "userId" = %s AND "calendarType" = %s ORDER BY "calendarId" LIMIT 1',
                       (user_id, kind)).fetchone()
    if row is None:
        created = conn.execute(LINK, params).fetchone()
        assert created is not None
        return int(created["calendarId"]), "calendars_linked"
    same = (row["extCalendarId"], row["socialAccountId"]) == (params["ext"], params["acct"]) and row["status"]
    if same and not fresh:
        return int(row["calendarId"]), None
    relink(conn, int(row["calendarId"]), params)
    return int(row["calendarId"]), "calendars_relinked"


def relink(conn: psycopg.Connection[dict[str, Any]], calendar_id: int, params: dict[str, Any]) -> None:
    """Point a calendar at a new account: drop its imported rows, pending pushes and open runs, reset state."""
    with conn.transaction():
        conn.execute("SET LOCAL autosync.origin = 'sync'")
        conn.execute('DELETE FROM non_reg_user_share WHERE "activityType" = 2 AND "activityId" IN '
                     '(SELECT "eventId" FROM cal_event WHERE "calendarId" = %s)', (calendar_id,))
        conn.execute('DELETE FROM cal_event WHERE "calendarId" = %s', (calendar_id,))
        conn.execute('UPDATE event_outbox SET "doneAt" = now(), outcome = \'dropped: calendar re-linked\' '
                     'WHERE "calendarId" = %s AND "doneAt" IS NULL', (calendar_id,))
        conn.execute('UPDATE sync_run SET "finishedAt" = now(), outcome = \'failed\', step = \'done\', '
                     'error = \'abandoned: demo calendar re-linked\' WHERE "calendarId" = %s '
                     'AND "finishedAt" IS NULL', (calendar_id,))
        conn.execute(RELINK, {**params, "id": calendar_id})


def _deactivate_others(conn: psycopg.Connection[dict[str, Any]], wanted: list[int]) -> int:
    """Demo calendars of users beyond this run's count would only fail: switch them off."""
    cur = conn.execute(
        'UPDATE calendar c SET status = false, "deactivatedReason" = \'demo: user not in this run\' '
        'FROM user_main u WHERE u."userId" = c."userId" AND u.email LIKE %s AND c.status '
        'AND c."calendarType" IN (1, 2) AND NOT (c."calendarId" = ANY(%s))', (f"%@{DOMAIN}", wanted))
    return cur.rowcount


def linked_calendars(conn: psycopg.Connection[dict[str, Any]]) -> list[dict[str, Any]]:
    """Active demo calendars with their user, ordered by user e-mail then provider."""
    return conn.execute(
        'SELECT c."calendarId", c."calendarType", c."extCalendarId", c."socialAccountId", c."userId", '
        'c."needsReauth", c."syncWindowStart", c."syncWindowEnd", u.email '
        'FROM calendar c JOIN user_main u ON u."userId" = c."userId" '
        'WHERE u.email LIKE %s AND c.status AND c."calendarType" IN (1, 2) '
        'ORDER BY u.email, c."calendarType", c."calendarId"', (f"%@{DOMAIN}",)).fetchall()

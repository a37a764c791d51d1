"""The seed-style sync, for comparison only: list everything recent, re-upsert every event row by row.

Google: ``events.list`` with ``updatedMin`` four weeks back, ``showDeleted=true``, ``maxResults=2000``
(following ``nextPageToken``), and every returned event written with its own
``INSERT … ON CONFLICT DO UPDATE`` (no content-hash guard), like the seed did.
Outlook: a plain ``/calendars/{id}/events`` list, plus one ``calendarView/delta`` call, plus one
``/events/{master}/instances`` call per series master; every event upserted row by row.

Both run as Celery tasks on the benchmark worker (same broker, pool and concurrency as autosync),
one task per calendar, fanned out from a task the way ``autosync.fan_out`` does. They use
autosync's HTTP edge, token refresh and normalizers, so the difference measured is the sync
strategy, not the plumbing. The token is refreshed only when it is about to expire (generous to the
baseline: a cron-style seed may well refresh every cycle).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from celery import Task

from autosync.celery import app
from autosync.model import Event
from autosync.providers.google import classify_api as google_classify
from autosync.providers.google import rfc3339
from autosync.providers.http import json_body
from autosync.providers.outlook import classify_api as graph_classify
from autosync.providers.outlook import graph_time
from autosync.services.context import context
from autosync.services.tokens import ensure_token
from autosync.store import events as ev_sql
from autosync.store import runs as run_sql
from autosync.store.db import Conn, transaction
from autosync.store.runs import RunContext
from bench import instrument

GOOGLE = "bench.baseline_google"
OUTLOOK = "bench.baseline_outlook"
FAN_OUT = "bench.baseline_fan_out"
QUEUES = {1: "autosync.google", 2: "autosync.outlook"}

_cols = ", ".join(f'"{c}"' for c in ev_sql.COLUMNS)
_vals = ", ".join(["%s"] * len(ev_sql.COLUMNS))
_sets = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in ev_sql.COLUMNS if c != "extEventId")
# Composed once from the constant column list (joined, not formatted); values are always bound.
UPSERT_ONE = " ".join([
    'INSERT INTO cal_event ("calendarId", "createdBy", "syncedAt",', _cols, ") VALUES (%s, %s, now(),", _vals,
    ') ON CONFLICT ("calendarId", "extEventId") DO UPDATE SET', _sets, ', "syncedAt" = now()',
])
TOUCH_CALENDAR = (
    'UPDATE calendar SET "lastSyncDate" = (now() AT TIME ZONE \'UTC\') WHERE "calendarId" = %(c)s'
)
DELTA_LINK = 'SELECT "deltaLink" FROM calendar WHERE "calendarId" = %(c)s'
SAVE_DELTA = 'UPDATE calendar SET "deltaLink" = %(link)s WHERE "calendarId" = %(c)s'


def _calendar(calendar_id: int) -> RunContext:
    """The calendar in the shape autosync's token service expects (a run context with no run)."""
    with transaction() as conn:
        row = conn.execute(
            'SELECT "calendarId", "userId", "calendarType", "extCalendarId", "socialAccountId", token, '
            '"refreshToken", "accessTokenExpirationDate" FROM calendar WHERE "calendarId" = %(c)s',
            {"c": calendar_id}).fetchone()
    if row is None:
        raise LookupError(f"calendar {calendar_id} is gone")
    return RunContext(
        run_id=0, calendar_id=row["calendarId"], finished_at=None, full_sync=True, page_cursor=None,
        window_start=None, window_end=None, allow_mass_delete=False, dry_run=False, user_id=row["userId"],
        calendar_type=row["calendarType"], ext_calendar_id=row["extCalendarId"],
        social_account_id=row["socialAccountId"], token=row["token"], refresh_token=row["refreshToken"],
        token_expires_at=row["accessTokenExpirationDate"], delta_link=None, sync_window_start=None,
        sync_window_end=None, calendar_active=True, last_page_checks=False, pending_deletes=False,
        empty_at_start=False)


def upsert_rows(conn: Conn, calendar_id: int, user_id: int, events: list[Event]) -> None:
    """One INSERT … ON CONFLICT DO UPDATE per event, every cycle, changed or not (the seed's way)."""
    for event in events:
        conn.execute(UPSERT_ONE, (calendar_id, user_id, *ev_sql.row_of(event)))  # type: ignore[arg-type]


def google_cycle(calendar_id: int) -> int:
    """One seed-style Google sync of a calendar; returns the number of events re-upserted."""
    from autosync.normalize.google import page_from_google

    app_ctx = context()
    ctx = _calendar(calendar_id)
    cal = ensure_token(app_ctx, ctx)
    path = f"/calendars/{quote(cal.ext_calendar_id or 'primary', safe='')}/events"
    params = {"updatedMin": rfc3339(datetime.now(UTC) - timedelta(weeks=4)), "showDeleted": "true",
              "maxResults": "2000"}
    items: list[dict[str, Any]] = []
    meta: dict[str, Any] = {}
    while True:
        resp = app_ctx.google.edge.send("GET", app_ctx.settings.google_api_url + path, classify=google_classify,
                                        limits=[], cooldowns=[],
                                        headers={"Authorization": f"Bearer {cal.access_token}"}, params=params)
        body = json_body(resp)
        items.extend(body.get("items") or [])
        meta = body
        if not body.get("nextPageToken"):
            break
        params = {**params, "pageToken": body["nextPageToken"]}
    events, _ = page_from_google(items, default_reminders=meta.get("defaultReminders") or (),
                                 calendar_tz=meta.get("timeZone"))
    with transaction() as conn:
        upsert_rows(conn, calendar_id, ctx.user_id, events)
        conn.execute(TOUCH_CALENDAR, {"c": calendar_id})
    instrument.bump("baseline.items", len(items))
    return len(events)


def _graph_get_all(url: str, token: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    app_ctx = context()
    headers = {"Authorization": f"Bearer {token}",
               "Prefer": 'outlook.timezone="UTC", odata.maxpagesize=1000, IdType="ImmutableId"'}
    found: list[dict[str, Any]] = []
    body: dict[str, Any] = {}
    next_url: str | None = url
    while next_url:
        body = json_body(app_ctx.outlook.edge.send("GET", next_url, classify=graph_classify, limits=[],
                                                   cooldowns=[], verbatim=True, headers=headers))
        found.extend(body.get("value") or [])
        next_url = body.get("@odata.nextLink")
    return found, body


def outlook_cycle(calendar_id: int) -> int:
    """One seed-style Outlook sync: events list + a delta call + instances per series master."""
    from autosync.normalize.outlook import event_from_graph, page_from_graph

    app_ctx = context()
    ctx = _calendar(calendar_id)
    cal = ensure_token(app_ctx, ctx)
    base = app_ctx.settings.graph_api_url
    cal_path = f"{base}/me/calendars/{quote(cal.ext_calendar_id or '', safe='')}"
    now = datetime.now(UTC)
    window = urlencode({"startDateTime": graph_time(now - timedelta(weeks=4)),
                        "endDateTime": graph_time(now + timedelta(days=365))})
    listed, _ = _graph_get_all(f"{cal_path}/events?$top=1000", cal.access_token)
    with transaction() as conn:
        row = conn.execute(DELTA_LINK, {"c": calendar_id}).fetchone()
    delta_url = (row or {}).get("deltaLink") or f"{cal_path}/calendarView/delta?{window}"
    delta_items, last = _graph_get_all(delta_url, cal.access_token)
    normalized, _, _ = page_from_graph(listed + delta_items)
    events = list({e.ext_id: e for e in normalized}.values())  # an item in both lists is written once
    masters = [e for e in events if e.recurrence and not e.recurring_event_id]
    instrument.bump("baseline.series_masters", len(masters))
    for master in masters:
        instances, _ = _graph_get_all(f"{base}/me/events/{quote(master.ext_id, safe='')}/instances?{window}",
                                      cal.access_token)
        for item in instances:
            if item.get("type") == "exception":
                events.append(event_from_graph(item, master=master))
    with transaction() as conn:
        upsert_rows(conn, calendar_id, ctx.user_id, events)
        conn.execute(TOUCH_CALENDAR, {"c": calendar_id})
        if last.get("@odata.deltaLink"):
            conn.execute(SAVE_DELTA, {"c": calendar_id, "link": last["@odata.deltaLink"]})
    instrument.bump("baseline.items", len(listed) + len(delta_items))
    return len(events)


@app.task(name=GOOGLE, ignore_result=True, acks_late=True)
def baseline_google(calendar_id: int) -> int:
    """Seed-style sync of one Google calendar."""
    return google_cycle(calendar_id)


@app.task(name=OUTLOOK, ignore_result=True, acks_late=True)
def baseline_outlook(calendar_id: int) -> int:
    """Seed-style sync of one Outlook calendar."""
    return outlook_cycle(calendar_id)


@app.task(name=FAN_OUT, bind=True, ignore_result=True)
def baseline_fan_out(self: Task, types: list[int]) -> int:
    """One baseline task per active calendar of the given types, published from the worker."""
    with transaction() as conn:
        due = run_sql.select_due(conn, types)
    for row in due:
        task = baseline_google if row["calendarType"] == 1 else baseline_outlook
        task.apply_async(args=(row["calendarId"],), queue=QUEUES[row["calendarType"]])
    return len(due)



"""Demo read-outs: progress counters from PostgreSQL, and a provider-vs-database convergence check."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import quote

import psycopg

from autosync.emulator.client import EmulatorClient
from autosync.errors import NormalizeError
from autosync.model import Event
from autosync.normalize.google import event_from_google
from autosync.normalize.outlook import event_from_graph

Conn = psycopg.Connection[dict[str, Any]]
PROVIDER = {1: "google", 2: "outlook"}
PAST_DAYS, FUTURE_DAYS = 28, 365  # autosync's default sync window

PROGRESS = """
SELECT
  (SELECT count(*) FROM calendar WHERE status AND "calendarType" IN (1, 2)) AS calendars,
  (SELECT count(*) FROM calendar WHERE status AND "needsReauth") AS calendars_needing_reauth,
  (SELECT count(*) FROM sync_run WHERE outcome = 'ok') AS runs_ok,
  (SELECT count(*) FROM sync_run WHERE outcome = 'failed') AS runs_failed,
  (SELECT count(*) FROM sync_run WHERE outcome = 'needs_reauth') AS runs_needs_reauth,
  (SELECT count(*) FROM sync_run WHERE outcome = 'blocked') AS runs_blocked,
  (SELECT count(*) FROM sync_run WHERE "finishedAt" IS NULL) AS runs_open,
  (SELECT count(*) FROM sync_run WHERE "fullSync") AS full_syncs,
  (SELECT count(*) FROM cal_event e JOIN calendar c ON c."calendarId" = e."calendarId"
    WHERE e.status AND e."extEventId" IS NOT NULL AND c."calendarType" IN (1, 2)) AS events_imported,
  (SELECT count(*) FROM event_outbox WHERE "doneAt" IS NOT NULL AND outcome = 'ok') AS pushes_done,
  (SELECT count(*) FROM event_outbox WHERE "doneAt" IS NULL) AS pushes_pending,
  (SELECT count(*) FROM event_outbox WHERE outcome = 'failed') AS pushes_failed,
  (SELECT count(*) FROM sync_conflict) AS conflicts,
  (SELECT count(*) FROM sync_skip) AS events_skipped,
  (SELECT coalesce(sum("providerRequests"), 0) FROM sync_run) AS provider_requests
"""


def progress(conn: Conn, emulator: Any) -> dict[str, int]:
    """Counters for the runner's status lines; ``errors`` = failed runs + failed pushes + skipped events."""
    row = conn.execute(PROGRESS).fetchone() or {}
    out = {k: int(v or 0) for k, v in row.items()}
    out["errors"] = out["runs_failed"] + out["pushes_failed"] + out["events_skipped"]
    log = getattr(emulator, "log", None)
    if log is not None:
        out["emulator_requests"] = int(log.query()["total"])
    return out


def convergence(conn: Conn, client: EmulatorClient, calendars: list[dict[str, Any]]) -> tuple[bool, list[str]]:
    """Every live provider event matches its cal_event row (id, summary, start/end) and vice versa."""
    lines: list[str] = []
    for cal in calendars:
        label = f"{cal['email']} {PROVIDER[cal['calendarType']]}"
        try:
            provider, ignored = _provider_events(client, cal)
        except NormalizeError as exc:
            lines.append(f"{label}: provider item {exc.ext_id} cannot be normalized: {exc.reason}")
            continue
        rows = conn.execute('SELECT "eventId", "extEventId", "eventName", "startDate", "startTime", "endDate", '
                            '"endTime", "linkAllDay" FROM cal_event WHERE "calendarId" = %s AND status '
                            'ORDER BY "eventId"', (cal["calendarId"],)).fetchall()
        lines += [f"{label}: app event {r['eventId']} '{r['eventName']}' not pushed yet (no extEventId)"
                  for r in rows if r["extEventId"] is None]
        stored = {r["extEventId"]: r for r in rows if r["extEventId"] is not None and r["extEventId"] not in ignored}
        for ext_id in sorted(provider.keys() - stored.keys()):
            lines.append(f"{label}: '{provider[ext_id].summary}' ({ext_id}) is at the provider, not in the database")
        for ext_id in sorted(stored.keys() - provider.keys()):
            lines.append(f"{label}: '{stored[ext_id]['eventName']}' ({ext_id}) is in the database, "
                         "not live at the provider")
        for ext_id in sorted(provider.keys() & stored.keys()):
            lines += [f"{label}: {ext_id}: {d}" for d in _differences(provider[ext_id], stored[ext_id])]
    return not lines, lines


def _provider_events(client: EmulatorClient, cal: dict[str, Any]) -> tuple[dict[str, Event], set[str]]:
    """(live provider items the database should hold, ids to ignore on both sides).

    Google: every live master, single event and modified instance (a full sync lists all events
    ending after timeMin; the demo's events all do). Outlook: single events in the calendar's sync
    window, masters with an occurrence in it and the exceptions /instances shows in it; live items
    wholly outside the window are ignored, as the calendarView delta never lists them.
    """
    if cal["calendarType"] == 1:
        items = client.google_list(cal["extCalendarId"])
        live = [event_from_google(i) for i in items if i.get("status") != "cancelled"]
        return {e.ext_id: e for e in live}, set()
    low, high = _window(cal)
    raw = client.outlook("GET", f"/calendars/{quote(cal['extCalendarId'], safe='')}/events")["value"]
    out: dict[str, Event] = {}
    for item in raw:
        if item["deleted"] or item["kind"] == "exception":
            continue
        event = event_from_graph(client.outlook("GET", f"/events/{quote(item['id'], safe='')}"))
        if item["kind"] == "seriesMaster":
            shown = client.outlook("GET", f"/events/{quote(item['id'], safe='')}/instances?startDateTime="
                                   f"{low:%Y-%m-%dT%H:%M:%SZ}&endDateTime={high:%Y-%m-%dT%H:%M:%SZ}")["value"]
            if shown:
                out[event.ext_id] = event
            out |= {e.ext_id: e for e in (event_from_graph(s) for s in shown if s.get("type") == "exception")}
        elif _overlaps(event, low, high):
            out[event.ext_id] = event
    ignored = {r["id"] for r in raw if not r["deleted"]} - out.keys()
    return out, ignored


def _window(cal: dict[str, Any]) -> tuple[datetime, datetime]:
    """The calendar's frozen Outlook window, or autosync's default one when none is stored yet."""
    if cal.get("syncWindowStart") and cal.get("syncWindowEnd"):
        return cal["syncWindowStart"].astimezone(UTC), cal["syncWindowEnd"].astimezone(UTC)
    now = datetime.now(UTC).replace(microsecond=0)
    return now - timedelta(days=PAST_DAYS), now + timedelta(days=FUTURE_DAYS)


def _overlaps(event: Event, low: datetime, high: datetime) -> bool:
    start, end = _as_instant(event.start), _as_instant(event.end, last_day=event.all_day)
    return start is not None and end is not None and start < high and end > low


def _as_instant(moment: date | None, last_day: bool = False) -> datetime | None:
    if moment is None or isinstance(moment, datetime):
        return moment
    return datetime.combine(moment + timedelta(days=1 if last_day else 0), time(0), UTC)


def _differences(event: Event, row: dict[str, Any]) -> list[str]:
    out = []
    if (event.summary or "") != (row["eventName"] or ""):
        out.append(f"summary differs: provider '{event.summary}' vs database '{row['eventName']}'")
    theirs = (event.all_day, _utc(event.start), _utc(event.end))
    ours = _row_times(row)
    if theirs != ours:
        out.append(f"time differs: provider {_show(theirs)} vs database {_show(ours)}")
    return out


def _utc(moment: date | None) -> date | None:
    if isinstance(moment, datetime):
        return moment.astimezone(UTC).replace(microsecond=0)
    return moment


def _row_times(row: dict[str, Any]) -> tuple[bool, date | None, date | None]:
    if row["linkAllDay"]:
        return True, row["startDate"], row["endDate"]
    return False, _at(row["startDate"], row["startTime"]), _at(row["endDate"], row["endTime"])


def _at(day: date | None, clock: time | None) -> datetime | None:
    if day is None:
        return None
    return datetime.combine(day, clock or time(0), UTC).replace(microsecond=0)


def _show(times: tuple[bool, date | None, date | None]) -> str:
    all_day, start, end = times
    fmt = (lambda d: d.isoformat() if d else "-") if all_day else \
        (lambda d: d.strftime("%Y-%m-%d %H:%MZ") if isinstance(d, datetime) else "-")
    return f"{'all-day ' if all_day else ''}{fmt(start)} .. {fmt(end)}"

"""Google pull sync end to end: real worker, PostgreSQL, Redis and the emulator over HTTP."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from tests.e2e.helpers import events, link, run_rows, sync


def _day(offset: int) -> date:
    return (datetime.now(UTC) + timedelta(days=offset)).date()


def _timed(summary: str, offset: int, hour: int, tz: str = "Europe/Berlin", **extra: object) -> dict:
    d = _day(offset).isoformat()
    return {"summary": summary, "start": {"dateTime": f"{d}T{hour:02d}:00:00", "timeZone": tz},
            "end": {"dateTime": f"{d}T{hour + 1:02d}:00:00", "timeZone": tz}, **extra}


def test_first_sync_imports_events_and_stores_the_cursor(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    emu.google_insert(cal.ext_calendar_id, _timed("Design review", 3, 9, location="Room 4.2",
                                                   attendees=[{"email": "bob@example.org",
                                                               "responseStatus": "accepted"}]))
    emu.google_insert(cal.ext_calendar_id, {"summary": "Offsite", "start": {"date": _day(5).isoformat()},
                                            "end": {"date": _day(7).isoformat()}})
    summary = sync(cal.user_id)
    assert [r["outcome"] for r in summary["runs"]] == ["ok"]
    rows = events(db, cal.calendar_id)
    by_name = {r["eventName"]: r for r in rows.values()}
    review = by_name["Design review"]
    assert review["location"] == "Room 4.2" and review["linkAllDay"] is False
    assert review["startTimeZone"] == "Europe/Berlin"
    assert review["attendees"][0]["email"] == "bob@example.org"
    offsite = by_name["Offsite"]
    assert offsite["linkAllDay"] and offsite["startDate"] == _day(5) and offsite["endDate"] == _day(6)
    assert offsite["startTime"] is None
    cal_row = db.execute('SELECT "deltaLink", "lastSyncDate", token FROM calendar WHERE "calendarId" = %s',
                         (cal.calendar_id,)).fetchone()
    assert cal_row is not None and cal_row[0] and cal_row[1] is not None and cal_row[2]
    # The emulator saw the token in the header, never in the URL.
    log = emu.requests(provider="google")["requests"]
    assert all("access_token" not in r["query"] for r in log)


def test_unchanged_calendar_costs_exactly_one_request_and_writes_nothing(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    emu.google_insert(cal.ext_calendar_id, _timed("Standup", 1, 8))
    sync(cal.user_id)
    before = db.execute('SELECT "syncedAt" FROM cal_event').fetchall()
    emu.clear_requests()
    summary = sync(cal.user_id)
    assert summary["runs"][0]["providerRequests"] == 1
    assert emu.requests(provider="google")["total"] == 1
    assert db.execute('SELECT "syncedAt" FROM cal_event').fetchall() == before
    only = emu.requests(provider="google")["requests"][0]
    assert "syncToken" in only["query"] and "timeMin" not in only["query"]


def test_incremental_add_change_delete(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    a = emu.google_insert(cal.ext_calendar_id, _timed("A", 1, 10))
    b = emu.google_insert(cal.ext_calendar_id, _timed("B", 2, 10))
    sync(cal.user_id)
    emu.google_patch(cal.ext_calendar_id, a["id"], {"summary": "A renamed"})
    emu.google_delete(cal.ext_calendar_id, b["id"])
    c = emu.google_insert(cal.ext_calendar_id, _timed("C", 3, 10))
    sync(cal.user_id)
    rows = events(db, cal.calendar_id)
    assert rows[a["id"]]["eventName"] == "A renamed" and rows[a["id"]]["status"]
    assert rows[b["id"]]["status"] is False and rows[b["id"]]["eventName"] == "B"  # kept, marked deleted
    assert rows[c["id"]]["status"]


def test_recurring_series_with_moved_and_cancelled_instances(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    start = _day(1)
    master = emu.google_insert(cal.ext_calendar_id, {
        "summary": "Standup", "recurrence": ["RRULE:FREQ=DAILY;COUNT=5"],
        "start": {"dateTime": f"{start}T09:00:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": f"{start}T09:15:00", "timeZone": "Europe/Berlin"}})
    sync(cal.user_id)
    instances = [e for e in emu.google_list(cal.ext_calendar_id) if e.get("recurringEventId")]
    assert instances == []
    second = datetime.combine(start + timedelta(days=1), time(9)).replace(
        tzinfo=ZoneInfo("Europe/Berlin")).astimezone(UTC)
    third = second + timedelta(days=1)
    moved_id = f"{master['id']}_{second.strftime('%Y%m%dT%H%M%SZ')}"
    cancelled_id = f"{master['id']}_{third.strftime('%Y%m%dT%H%M%SZ')}"
    emu.google_patch(cal.ext_calendar_id, moved_id, {"summary": "Standup (moved)",
                                                     "start": {"dateTime": f"{start + timedelta(days=1)}T11:00:00",
                                                               "timeZone": "Europe/Berlin"},
                                                     "end": {"dateTime": f"{start + timedelta(days=1)}T11:15:00",
                                                             "timeZone": "Europe/Berlin"}})
    emu.google_delete(cal.ext_calendar_id, cancelled_id)
    sync(cal.user_id)
    rows = events(db, cal.calendar_id)
    assert rows[master["id"]]["recurrence"] == ["RRULE:FREQ=DAILY;COUNT=5"] and rows[master["id"]]["status"]
    moved = rows[moved_id]
    assert moved["recurringEventId"] == master["id"] and moved["eventName"] == "Standup (moved)"
    assert moved["originalStartDate"] == second.date() and moved["originalStartTime"] == second.time()
    assert moved["startTime"] == (second + timedelta(hours=2)).time()
    gone = rows[cancelled_id]
    assert gone["status"] is False and gone["eventStatus"] == "cancelled"
    assert gone["recurringEventId"] == master["id"] and gone["originalStartTime"] == third.time()
    assert rows[master["id"]]["status"]  # a cancelled instance is not a deleted series


def test_dst_crossing_event_keeps_wall_clock_in_its_zone(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    # Europe/Berlin leaves DST on the last Sunday of October: 09:00 local is 07:00Z before, 08:00Z after.
    year = datetime.now(UTC).year + 1
    emu.google_insert(cal.ext_calendar_id, {"summary": "Before", "start": {
        "dateTime": f"{year}-10-20T09:00:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": f"{year}-10-20T10:00:00", "timeZone": "Europe/Berlin"}})
    emu.google_insert(cal.ext_calendar_id, {"summary": "After", "start": {
        "dateTime": f"{year}-11-03T09:00:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": f"{year}-11-03T10:00:00", "timeZone": "Europe/Berlin"}})
    sync(cal.user_id)
    rows = {r["eventName"]: r for r in events(db, cal.calendar_id).values()}
    assert rows["Before"]["startTime"] == time(7) and rows["After"]["startTime"] == time(8)


def test_gone_cursor_410_full_resync_marks_vanished_events_deleted(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    keep = emu.google_insert(cal.ext_calendar_id, _timed("Keep", 1, 10))
    vanish = emu.google_insert(cal.ext_calendar_id, _timed("Vanish", 2, 10))
    for i in range(3):
        emu.google_insert(cal.ext_calendar_id, _timed(f"Other {i}", 3 + i, 10))
    sync(cal.user_id)
    emu.invalidate_cursors(cal.ext_calendar_id)
    emu.google_delete(cal.ext_calendar_id, vanish["id"])
    summary = sync(cal.user_id)
    run = summary["runs"][0]
    assert run["outcome"] == "ok" and run["fullSync"] is True
    rows = events(db, cal.calendar_id)
    assert rows[vanish["id"]]["status"] is False and rows[keep["id"]]["status"]
    statuses = [r["status"] for r in emu.requests(provider="google", endpoint="google.events.list")["requests"]]
    assert 410 in statuses


def test_run_is_recorded_with_counts(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    for i in range(3):
        emu.google_insert(cal.ext_calendar_id, _timed(f"E{i}", 1 + i, 9))
    sync(cal.user_id)
    run = run_rows(db, cal.calendar_id)[-1]
    assert run["outcome"] == "ok" and run["eventsUpserted"] == 3 and run["providerRequests"] == 2
    assert run["finishedAt"] is not None and run["error"] is None

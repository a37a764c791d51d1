"""Google event types end to end: only default and Gmail events reach cal_event, and a push never
asks Google for a write it refuses for the event's type (no failed-push loop).

The emulator lists every type unless `eventTypes` filters, refuses to create fromGmail events and
lets a Gmail event change only its reminders (and be deleted), as Google documents.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from tests.e2e.helpers import Linked, events, link, sync
from tests.e2e.test_pushback_google import WRITES, app_insert, app_update, at, day, push_log, row, table


def _timed(kind: str, summary: str, offset: int, hour: int, **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "eventType": kind, "start": {"dateTime": at(offset, hour).isoformat()},
            "end": {"dateTime": at(offset, hour + 1).isoformat()}, **extra}


def _seed_every_type(emu: Any, cal: Linked, offset: int = 2) -> dict[str, str]:
    """One event of each type, put there as Google, Gmail and the Workspace UI would; type -> id."""
    made = [
        emu.google_insert(cal.ext_calendar_id, _timed("default", "Dentist", offset, 9)),
        emu.google_insert(cal.ext_calendar_id, _timed("outOfOffice", "Away", offset, 11,
                                                      outOfOfficeProperties={"autoDeclineMode": "declineNone"})),
        emu.google_insert(cal.ext_calendar_id, _timed("focusTime", "Deep work", offset, 13, focusTimeProperties={})),
        emu.google_insert(cal.ext_calendar_id, _timed("workingLocation", "Home", offset, 7,
                                                      workingLocationProperties={"type": "homeOffice"})),
        emu.google_insert(cal.ext_calendar_id, _timed("fromGmail", "Flight LH 123", offset, 15), raw=True),
        emu.google_insert(cal.ext_calendar_id, {"summary": "Ana's birthday", "eventType": "birthday",
                                                "start": {"date": day(offset).isoformat()},
                                                "end": {"date": day(offset + 1).isoformat()},
                                                "recurrence": ["RRULE:FREQ=YEARLY"]}, raw=True),
    ]
    return {e["eventType"]: e["id"] for e in made}


def _g_writes(emu: Any) -> list[dict[str, Any]]:
    return [r for ep in WRITES for r in emu.requests(provider="google", endpoint=ep)["requests"]]


def test_only_default_and_gmail_events_reach_cal_event(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    ids = _seed_every_type(emu, cal)
    sync(cal.user_id)
    rows = events(db, cal.calendar_id)
    assert {r["eventType"] for r in rows.values()} == {"default", "fromGmail"}
    assert set(rows) == {ids["default"], ids["fromGmail"]}
    [listing] = emu.requests(provider="google", endpoint="google.events.list")["requests"]
    assert listing["query"]["eventTypes"] == ["default", "fromGmail"]
    # Incremental: the same filter rides along with the sync token; new status entries and birthdays
    # stay out, a deletion of a type never listed changes nothing, a new default event comes in.
    emu.clear_requests()
    emu.google_delete(cal.ext_calendar_id, ids["outOfOffice"])
    later = _seed_every_type(emu, cal, offset=4)
    sync(cal.user_id)
    [incremental] = emu.requests(provider="google", endpoint="google.events.list")["requests"]
    assert "syncToken" in incremental["query"] and incremental["query"]["eventTypes"] == ["default", "fromGmail"]
    rows = events(db, cal.calendar_id)
    assert set(rows) == {ids["default"], ids["fromGmail"], later["default"], later["fromGmail"]}
    assert all(r["status"] for r in rows.values())


def test_an_app_edit_of_a_gmail_event_pushes_only_what_google_accepts(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    flight = _seed_every_type(emu, cal)["fromGmail"]
    sync(cal.user_id)
    event_id = events(db, cal.calendar_id)[flight]["eventId"]
    app_update(db, event_id, eventName="My flight", reminders=Jsonb(
        [{"method": "popup", "minutes": 180}]), remindersUseDefault=False)
    emu.clear_requests()
    run = sync(cal.user_id)["runs"][0]
    assert run["outcome"] == "ok" and run["pushUpdated"] == 1, run
    on_google = emu.google_get(cal.ext_calendar_id, flight)
    assert on_google["summary"] == "Flight LH 123"  # Google keeps a Gmail event's title ...
    assert on_google["reminders"]["overrides"] == [{"method": "popup", "minutes": 180}]  # ... not its reminders
    assert [r["status"] for r in _g_writes(emu)] == [200]  # one PATCH, never refused
    assert row(db, event_id)["eventName"] == "Flight LH 123"  # the app shows what Google has
    [entry] = [r for r in table(db, "event_outbox", "outboxId") if r["eventId"] == event_id]
    assert entry["outcome"] == "refused" and "summary" in entry["lastError"] and entry["doneAt"] is not None
    assert push_log(db)[-1]["outcome"] == "refused"
    emu.clear_requests()
    again = sync(cal.user_id)["runs"][0]
    assert _g_writes(emu) == [] and again["pushFailed"] == 0  # recorded once: no retry loop
    # Title only: nothing Google accepts, so nothing is sent at all.
    app_update(db, event_id, eventName="Renamed again")
    emu.clear_requests()
    run = sync(cal.user_id)["runs"][0]
    assert _g_writes(emu) == [] and run["pushFailed"] == 1
    assert row(db, event_id)["eventName"] == "Flight LH 123"
    # Deleting it in the app deletes it at Google: Gmail events may be removed.
    app_update(db, event_id, status=False)
    sync(cal.user_id)
    assert emu.google_get(cal.ext_calendar_id, flight)["status"] == "cancelled"


def _legacy_row(db: psycopg.Connection, cal: Linked, ext: str, kind: str, raw: dict[str, Any]) -> int:
    """A row imported before the eventTypes filter existed (autosync's own write: no outbox entry);
    the row itself where an import without the filter made it."""
    with db.transaction():
        db.execute("SELECT set_config('autosync.origin', 'sync', true)")
        found = db.execute(
            'INSERT INTO cal_event ("calendarId", "createdBy", "extEventId", "eventName", "startDate", "endDate", '
            '"linkAllDay", "eventType", "providerData", "syncedAt") VALUES (%s, %s, %s, %s, %s, %s, true, %s, %s, '
            'now()) ON CONFLICT ("calendarId", "extEventId") DO UPDATE SET status = true RETURNING "eventId"',
            (cal.calendar_id, cal.user_id, ext, raw["summary"], day(2), day(2), kind,
             Jsonb(raw))).fetchone()
    assert found is not None
    return int(found[0])


def test_rows_of_unsynced_types_are_never_pushed(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    ids = _seed_every_type(emu, cal)
    sync(cal.user_id)
    birthday = emu.google_get(cal.ext_calendar_id, ids["birthday"])
    event_id = _legacy_row(db, cal, ids["birthday"], "birthday", birthday)
    app_update(db, event_id, eventName="Ana turns 40")
    emu.clear_requests()
    run = sync(cal.user_id)["runs"][0]
    assert _g_writes(emu) == [] and run["outcome"] == "ok" and run["pushFailed"] == 1
    [entry] = [r for r in table(db, "event_outbox", "outboxId") if r["eventId"] == event_id]
    assert entry["outcome"] == "refused" and "birthday" in entry["lastError"]
    assert emu.google_get(cal.ext_calendar_id, ids["birthday"])["summary"] == "Ana's birthday"
    # An app-made row that claims a type Google will not create is created as an ordinary event.
    made = app_insert(db, cal, "Office day", at(3, 9), at(3, 17), eventType="workingLocation")
    run = sync(cal.user_id)["runs"][0]
    assert run["pushCreated"] == 1
    created = emu.google_get(cal.ext_calendar_id, row(db, made)["extEventId"])
    assert created["eventType"] == "default" and row(db, made)["eventType"] == "default"


def test_the_upgrade_removes_unsynced_rows_without_deleting_them_at_google(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    ids = _seed_every_type(emu, cal)
    sync(cal.user_id)
    legacy = {kind: _legacy_row(db, cal, ids[kind], kind, emu.google_get(cal.ext_calendar_id, ids[kind]))
              for kind in ("birthday", "focusTime", "outOfOffice", "workingLocation")}
    app_update(db, legacy["focusTime"], eventName="Focus (edited before the upgrade)")
    migration = resources.files("autosync.store").joinpath("migrations", "0010_google_event_types.sql")
    with db.transaction():
        db.execute(migration.read_text(encoding="utf-8").encode())
    assert all(not row(db, event_id)["status"] for event_id in legacy.values())
    pending = [r for r in table(db, "event_outbox", "outboxId") if r["doneAt"] is None]
    assert pending == []  # the edit waiting on a focus-time row was closed, and no delete was queued
    cursor = db.execute('SELECT "deltaLink" FROM calendar WHERE "calendarId" = %s', (cal.calendar_id,)).fetchone()
    assert cursor is not None and cursor[0] is None
    emu.clear_requests()
    run = sync(cal.user_id)["runs"][0]
    assert run["outcome"] == "ok" and _g_writes(emu) == []
    [listing] = emu.requests(provider="google", endpoint="google.events.list")["requests"]
    assert "syncToken" not in listing["query"]  # listed in full once, with the filter
    live = events(db, cal.calendar_id, live_only=True)
    assert set(live) == {ids["default"], ids["fromGmail"]}
    assert all(emu.google_get(cal.ext_calendar_id, ids[k])["status"] != "cancelled" for k in legacy)

"""Zones on push, end to end: an event whose provider copy names no zone keeps its owner's zone.

Google: an event made from Gmail carries a dateTime with an offset and no timeZone; Google reads it
in its calendar's zone, which the import stores on the row. Outlook: a legacy custom zone reads
`tzone://Microsoft/Custom` in `originalStartTimeZone` and cannot be written back; the import can only
label the event UTC. Neither label may reach the provider when the app edits the event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg.types.json import Jsonb

from tests.e2e.helpers import Linked, events, link, sync
from tests.e2e.test_pushback_google import app_move, app_update, at, row
from tests.e2e.test_pushback_outlook import o_get, o_moment


def _link_in_zone(db: psycopg.Connection, emu: Any, zone: str) -> Linked:
    """A Google calendar whose own zone is ``zone`` (the app's rows, as in helpers.link)."""
    acct = emu.create_account("google", "zoe@example.com", time_zone=zone)
    user = db.execute('INSERT INTO user_main (email) VALUES (%s) RETURNING "userId"', ("zoe@example.com",)).fetchone()
    cal = db.execute(
        'INSERT INTO calendar ("userId", "calendarType", "extCalendarId", "socialAccountId", "refreshToken", status) '
        'VALUES (%s, 1, %s, %s, %s, true) RETURNING "calendarId"',
        (user[0], acct["calendar_id"], acct["account_id"], acct["refresh_token"])).fetchone()
    return Linked(user[0], cal[0], acct["account_id"], acct["calendar_id"], acct["refresh_token"])


def test_a_google_event_without_a_zone_is_edited_in_its_calendars_zone(worker, db, emu) -> None:
    cal = _link_in_zone(db, emu, "Europe/Berlin")
    made = emu.google_insert(cal.ext_calendar_id, {"summary": "Dinner booking", "start": {
        "dateTime": at(3, 18).isoformat()}, "end": {"dateTime": at(3, 20).isoformat()}})
    sync(cal.user_id)
    event_id = events(db, cal.calendar_id)[made["id"]]["eventId"]
    assert row(db, event_id)["startTimeZone"] == "Europe/Berlin"
    # Google moves it (not imported yet), then the app renames it: the later app change wins the
    # conflict, and its PATCH must carry the title alone, neither a zone nor the old times.
    emu.google_patch(cal.ext_calendar_id, made["id"], {"start": {"dateTime": at(3, 19).isoformat()},
                                                       "end": {"dateTime": at(3, 21).isoformat()}})
    app_update(db, event_id, eventName="Dinner booking (table for 4)")
    run = sync(cal.user_id)["runs"][0]
    assert run["outcome"] == "ok" and run["pushUpdated"] == 1, run
    on_google = emu.google_get(cal.ext_calendar_id, made["id"])
    assert on_google["summary"] == "Dinner booking (table for 4)"
    assert on_google["start"] == {"dateTime": at(3, 19).isoformat()}  # Google's move stands, zone unset
    assert row(db, event_id)["startTime"] == at(3, 19).time().replace(tzinfo=None)
    # The app moves it: the new times are written in the calendar's zone, never as UTC.
    app_move(db, event_id, at(4, 17), at(4, 18))
    sync(cal.user_id)
    start = emu.google_get(cal.ext_calendar_id, made["id"])["start"]
    assert start["timeZone"] == "Europe/Berlin" and datetime.fromisoformat(start["dateTime"]) == at(4, 17)


def _as_custom_zone(db: psycopg.Connection, event_id: int) -> None:
    """The row as the import stores an Outlook event in a legacy custom zone (autosync's own write)."""
    with db.transaction():
        db.execute("SELECT set_config('autosync.origin', 'sync', true)")
        raw = row(db, event_id)["providerData"]
        raw.update({"originalStartTimeZone": "tzone://Microsoft/Custom",
                    "originalEndTimeZone": "tzone://Microsoft/Custom"})
        db.execute('UPDATE cal_event SET "providerData" = %s, "startTimeZone" = %s, "endTimeZone" = %s '
                   'WHERE "eventId" = %s', (Jsonb(raw), "UTC", "UTC", event_id))


def test_an_outlook_event_in_an_unnamed_zone_is_edited_in_its_owners_zone(worker, db, emu) -> None:
    cal = link(db, emu, "outlook")
    path = f"/calendars/{quote(cal.ext_calendar_id, safe='')}/events"
    berlin = "W. Europe Standard Time"
    for n, hour in enumerate((8, 10, 14)):  # what the owner makes in Outlook carries their zone
        day = at(2 + n, 0).date().isoformat()
        emu.outlook("POST", path, {"subject": f"Meeting {n}",
                                   "start": {"dateTime": f"{day}T{hour:02d}:00:00", "timeZone": berlin},
                                   "end": {"dateTime": f"{day}T{hour + 1:02d}:00:00", "timeZone": berlin}})
    sync(cal.user_id)
    event_id = next(r["eventId"] for r in events(db, cal.calendar_id).values() if r["eventName"] == "Meeting 0")
    ext = row(db, event_id)["extEventId"]
    _as_custom_zone(db, event_id)
    app_move(db, event_id, at(6, 7), at(6, 8))
    run = sync(cal.user_id)["runs"][0]
    assert run["outcome"] == "ok" and run["pushUpdated"] == 1, run
    after = o_get(emu, ext)
    assert after["originalStartTimeZone"] == "W. Europe Standard Time"  # the owner's zone, not UTC
    assert (o_moment(after["start"]), o_moment(after["end"])) == (at(6, 7), at(6, 8))
    assert row(db, event_id)["startTimeZone"] == "Europe/Berlin"
    # The next edit sees no zone change to send: only the title goes.
    app_update(db, event_id, eventName="Meeting 0 (renamed)")
    sync(cal.user_id)
    assert o_get(emu, ext)["originalStartTimeZone"] == "W. Europe Standard Time"
    assert o_get(emu, ext)["subject"] == "Meeting 0 (renamed)"

"""Google sync-back end to end: app writes on cal_event and the share tables reach Google exactly once.

The app side is plain SQL on cal_event / cal_event_share / non_reg_user_share, as the app writes; the
provider side is checked through the emulator's admin API. The small app-write helpers here are also
used by the Outlook and convergence modules.
"""

from __future__ import annotations

import time as clock
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql as q

from tests.e2e.helpers import Linked, events, link, run_rows, sync

WRITES = ("google.events.insert", "google.events.patch", "google.events.update", "google.events.delete")


# --- app-side writes (plain SQL, as the app does) -----------------------------------------------


def at(offset_days: int, hour: int, minute: int = 0) -> datetime:
    """A UTC moment `offset_days` from today at hour:minute."""
    day = (datetime.now(UTC) + timedelta(days=offset_days)).date()
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def day(offset_days: int) -> date:
    """The UTC date `offset_days` from today."""
    return (datetime.now(UTC) + timedelta(days=offset_days)).date()


def app_insert(db: psycopg.Connection, cal: Linked, name: str, start: datetime, end: datetime,
               **cols: Any) -> int:
    """INSERT a timed event the way the app does (UTC date/time columns, no extEventId)."""
    values = {"calendarId": cal.calendar_id, "createdBy": cal.user_id, "eventName": name,
              "startDate": start.date(), "startTime": start.time().replace(tzinfo=None),
              "endDate": end.date(), "endTime": end.time().replace(tzinfo=None), **cols}
    return _insert(db, values)


def app_insert_all_day(db: psycopg.Connection, cal: Linked, name: str, first: date, last: date) -> int:
    """INSERT an all-day event: first and LAST day (inclusive), NULL times, linkAllDay true."""
    return _insert(db, {"calendarId": cal.calendar_id, "createdBy": cal.user_id, "eventName": name,
                        "startDate": first, "endDate": last, "linkAllDay": True})


def _insert(db: psycopg.Connection, values: dict[str, Any]) -> int:
    stmt = q.SQL('INSERT INTO cal_event ({}) VALUES ({}) RETURNING "eventId"').format(
        q.SQL(", ").join(q.Identifier(k) for k in values), q.SQL(", ").join(q.Placeholder() for _ in values))
    row = db.execute(stmt, list(values.values())).fetchone()
    assert row is not None
    return int(row[0])


def app_update(db: psycopg.Connection, event_id: int, **cols: Any) -> None:
    """UPDATE columns of one cal_event row, as the app does."""
    stmt = q.SQL('UPDATE cal_event SET {} WHERE "eventId" = %s').format(
        q.SQL(", ").join(q.SQL("{} = %s").format(q.Identifier(k)) for k in cols))
    db.execute(stmt, [*cols.values(), event_id])


def app_move(db: psycopg.Connection, event_id: int, start: datetime, end: datetime, **cols: Any) -> None:
    """Move a timed event to new UTC start/end (and change any other columns)."""
    app_update(db, event_id, startDate=start.date(), startTime=start.time(), endDate=end.date(),
               endTime=end.time(), **cols)


def app_delete(db: psycopg.Connection, event_id: int) -> None:
    """DELETE the row, as the app does for a hard delete."""
    db.execute('DELETE FROM cal_event WHERE "eventId" = %s', (event_id,))


def row(db: psycopg.Connection, event_id: int) -> dict[str, Any]:
    """One cal_event row."""
    with db.cursor(row_factory=psycopg.rows.dict_row) as cur:
        found = cur.execute('SELECT * FROM cal_event WHERE "eventId" = %s', (event_id,)).fetchone()
    assert found is not None, f"cal_event {event_id} is gone"
    return found


def table(db: psycopg.Connection, name: str, order: str) -> list[dict[str, Any]]:
    """Every row of a bookkeeping table, in order."""
    with db.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(q.SQL("SELECT * FROM {} ORDER BY {}").format(q.Identifier(name),
                                                                       q.Identifier(order))).fetchall()


def push_log(db: psycopg.Connection) -> list[dict[str, Any]]:
    """temp_log entries written by pushes, oldest first."""
    return [r["data"] for r in table(db, "temp_log", "logId")]


def add_user(db: psycopg.Connection, email: str, first: str, last: str = "") -> int:
    """A registered MiPlanIt user."""
    found = db.execute('INSERT INTO user_main (email, "firstName", "lastName") VALUES (%s, %s, %s) '
                       'RETURNING "userId"', (email, first, last)).fetchone()
    assert found is not None
    return int(found[0])


def share(db: psycopg.Connection, event_id: int, user_id: int, shared_status: int = 0,
          status: bool = True) -> None:
    """Share an event with a registered user (cal_event_share)."""
    db.execute('INSERT INTO cal_event_share ("eventId", "sharedUser", "sharedStatus", status) '
               "VALUES (%s, %s, %s, %s)", (event_id, user_id, shared_status, status))


def share_external(db: psycopg.Connection, event_id: int, email: str, activity_type: int = 2) -> None:
    """Share an activity with a non-registered e-mail (non_reg_user_share)."""
    db.execute('INSERT INTO non_reg_user_share ("activityId", "activityType", email) VALUES (%s, %s, %s)',
               (event_id, activity_type, email))


def wait_until_due(db: psycopg.Connection, within: float = 10.0) -> None:
    """Sleep until every pending outbox row may be attempted again (its backoff has passed)."""
    deadline = clock.monotonic() + within
    while clock.monotonic() < deadline:
        row_ = db.execute('SELECT count(*) FROM event_outbox WHERE "doneAt" IS NULL '
                          'AND "nextAttemptAt" > now()').fetchone()
        if row_ is not None and row_[0] == 0:
            return
        clock.sleep(0.1)
    raise AssertionError("outbox rows still backing off")


# --- Google side ----------------------------------------------------------------------------------


def g_live(emu: Any, cal: Linked) -> dict[str, dict[str, Any]]:
    """Live (not cancelled) Google events of the calendar, by id."""
    return {e["id"]: e for e in emu.google_list(cal.ext_calendar_id) if e.get("status") != "cancelled"}


def g_moment(value: dict[str, Any]) -> datetime | date:
    """A Google start/end object as an aware UTC datetime, or a date for all-day."""
    if value.get("date"):
        return date.fromisoformat(value["date"])
    return datetime.fromisoformat(value["dateTime"].replace("Z", "+00:00")).astimezone(UTC)


def g_writes(emu: Any) -> list[dict[str, Any]]:
    """Logged Google write requests (insert, patch, update, delete)."""
    return [r for ep in WRITES for r in emu.requests(provider="google", endpoint=ep)["requests"]]


def _synced(db: psycopg.Connection, emu: Any, name: str = "Lunch", offset: int = 2,
            email: str = "alice@example.com") -> tuple[Linked, int, str]:
    cal = link(db, emu, "google", email)
    event_id = app_insert(db, cal, name, at(offset, 12), at(offset, 13))
    sync(cal.user_id)
    ext = row(db, event_id)["extEventId"]
    assert ext
    return cal, event_id, ext


# --- 1. create ------------------------------------------------------------------------------------


def test_app_insert_is_created_on_google_logged_and_not_echoed(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    event_id = app_insert(db, cal, "Lunch with Ana", at(2, 12), at(2, 13, 30), location="Cafe Central",
                          description="Bring the slides")
    assert [r["op"] for r in table(db, "event_outbox", "outboxId")] == ["insert"]
    summary = sync(cal.user_id)
    run = summary["runs"][0]
    assert run["outcome"] == "ok" and run["pushCreated"] == 1 and run["pushFailed"] == 0
    ext = row(db, event_id)["extEventId"]
    assert ext
    g = emu.google_get(cal.ext_calendar_id, ext)
    assert (g["summary"], g["location"], g["description"]) == ("Lunch with Ana", "Cafe Central", "Bring the slides")
    assert g_moment(g["start"]) == at(2, 12) and g_moment(g["end"]) == at(2, 13, 30)
    assert list(g_live(emu, cal)) == [ext]
    [entry] = push_log(db)
    assert (entry["op"], entry["eventId"], entry["outcome"], entry["extEventId"]) == ("insert", event_id, "ok", ext)
    assert (entry["calendarId"], entry["calendarType"]) == (cal.calendar_id, 1)
    outbox = table(db, "event_outbox", "outboxId")
    assert len(outbox) == 1 and outbox[0]["doneAt"] is not None and outbox[0]["outcome"] == "ok"
    # A second sync pushes nothing, and importing our own event writes no row and no outbox entry.
    synced_at = row(db, event_id)["syncedAt"]
    emu.clear_requests()
    again = sync(cal.user_id)["runs"][0]
    assert again["outcome"] == "ok"
    assert (again["pushCreated"], again["pushUpdated"], again["pushDeleted"]) == (0, 0, 0)
    assert g_writes(emu) == []
    assert len(table(db, "event_outbox", "outboxId")) == 1 and len(push_log(db)) == 1
    assert row(db, event_id)["syncedAt"] == synced_at
    assert list(events(db, cal.calendar_id)) == [ext]
    assert list(g_live(emu, cal)) == [ext]


# --- 2. update ------------------------------------------------------------------------------------


def test_app_rename_and_move_patch_google_and_keep_its_attendees_and_conference(worker, db, emu) -> None:
    cal, event_id, ext = _synced(db, emu)
    conference = {"createRequest": {"requestId": "req-1", "conferenceSolutionKey": {"type": "hangoutsMeet"}}}
    emu.google_patch(cal.ext_calendar_id, ext, {
        "attendees": [{"email": "bob@example.org", "responseStatus": "accepted", "comment": "see you"}],
        "conferenceData": conference})
    sync(cal.user_id)
    assert row(db, event_id)["attendees"][0]["email"] == "bob@example.org"
    before = emu.google_get(cal.ext_calendar_id, ext)
    assert before.get("hangoutLink") and before.get("conferenceData")
    app_move(db, event_id, at(3, 15), at(3, 16), eventName="Lunch (moved)")
    emu.clear_requests()
    run = sync(cal.user_id)["runs"][0]
    assert run["outcome"] == "ok" and run["pushUpdated"] == 1
    assert [r["endpoint"] for r in g_writes(emu)] == ["google.events.patch"]
    after = emu.google_get(cal.ext_calendar_id, ext)
    assert after["summary"] == "Lunch (moved)"
    assert g_moment(after["start"]) == at(3, 15) and g_moment(after["end"]) == at(3, 16)
    assert after["attendees"] == before["attendees"]
    assert after["conferenceData"] == before["conferenceData"] and after["hangoutLink"] == before["hangoutLink"]
    assert list(g_live(emu, cal)) == [ext]
    # Nothing left to push, no echo.
    emu.clear_requests()
    sync(cal.user_id)
    assert g_writes(emu) == []


# --- 3. delete ------------------------------------------------------------------------------------


def test_status_false_and_row_delete_remove_the_event_on_google(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    hidden = app_insert(db, cal, "Hidden", at(1, 9), at(1, 10))
    dropped = app_insert(db, cal, "Dropped", at(2, 9), at(2, 10))
    kept = app_insert(db, cal, "Kept", at(3, 9), at(3, 10))
    sync(cal.user_id)
    ids = {e: row(db, e)["extEventId"] for e in (hidden, dropped, kept)}
    app_update(db, hidden, status=False)
    app_delete(db, dropped)
    run = sync(cal.user_id)["runs"][0]
    assert run["outcome"] == "ok" and run["pushDeleted"] == 2 and run["pushFailed"] == 0
    assert list(g_live(emu, cal)) == [ids[kept]]
    deletes = [r for r in push_log(db) if r["op"] == "delete"]
    assert sorted((r["eventId"], r["extEventId"], r["outcome"]) for r in deletes) == sorted(
        [(hidden, ids[hidden], "ok"), (dropped, ids[dropped], "ok")])
    assert row(db, hidden)["status"] is False
    emu.clear_requests()
    sync(cal.user_id)
    assert g_writes(emu) == []


def test_deleting_an_event_already_gone_on_google_counts_as_success(worker, db, emu) -> None:
    cal, event_id, ext = _synced(db, emu)
    emu.google_delete(cal.ext_calendar_id, ext)
    app_delete(db, event_id)
    emu.clear_requests()
    run = sync(cal.user_id)["runs"][0]
    assert run["outcome"] == "ok" and run["pushDeleted"] == 1 and run["pushFailed"] == 0
    assert [r["status"] for r in g_writes(emu)] == [410]  # Google: "deleted"
    outbox = table(db, "event_outbox", "outboxId")[-1]
    assert (outbox["op"], outbox["outcome"]) == ("delete", "ok") and outbox["doneAt"] is not None
    assert push_log(db)[-1]["outcome"] == "ok" and g_live(emu, cal) == {}
    emu.clear_requests()
    sync(cal.user_id)
    assert g_writes(emu) == []


# --- 4. attendees from the share tables ---------------------------------------------------------


def test_shares_become_google_attendees_with_the_seed_rules(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    bob = add_user(db, "bob@example.org", "Bob", "Builder")
    carol = add_user(db, "carol@example.org", "Carol")
    dave = add_user(db, "dave@example.org", "Dave")
    event_id = app_insert(db, cal, "Planning", at(4, 10), at(4, 11))
    share(db, event_id, bob, shared_status=1)
    share(db, event_id, carol, shared_status=2)        # declined: never pushed
    share(db, event_id, dave, status=False)            # share withdrawn
    share(db, event_id, cal.user_id)                   # the creator is never an attendee
    share_external(db, event_id, "erin@outside.net")
    share_external(db, event_id, "frank@outside.net", activity_type=1)  # another kind of activity
    sync(cal.user_id)
    g = emu.google_get(cal.ext_calendar_id, row(db, event_id)["extEventId"])
    got = {a["email"]: a for a in g["attendees"]}
    assert set(got) == {"bob@example.org", "erin@outside.net"}
    assert got["bob@example.org"]["displayName"] == "Bob Builder"
    assert got["bob@example.org"]["responseStatus"] == "accepted"
    assert got["erin@outside.net"]["responseStatus"] == "needsAction"
    # A share added later is an attendee change of the event: patched, the others kept.
    share_external(db, event_id, "gina@outside.net")
    run = sync(cal.user_id)["runs"][0]
    assert run["pushUpdated"] == 1
    g = emu.google_get(cal.ext_calendar_id, g["id"])
    assert {a["email"] for a in g["attendees"]} == {"bob@example.org", "erin@outside.net", "gina@outside.net"}


# --- 5. all-day and recurring -------------------------------------------------------------------


def test_all_day_and_recurring_app_events_are_written_correctly(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    offsite = app_insert_all_day(db, cal, "Offsite", day(5), day(7))
    standup = app_insert(db, cal, "Standup", at(1, 8), at(1, 8, 15), recurrence=["RRULE:FREQ=DAILY;COUNT=5"])
    sync(cal.user_id)
    g_offsite = emu.google_get(cal.ext_calendar_id, row(db, offsite)["extEventId"])
    assert g_offsite["start"] == {"date": day(5).isoformat()}
    assert g_offsite["end"] == {"date": day(8).isoformat()}  # Google's end is exclusive
    g_standup = emu.google_get(cal.ext_calendar_id, row(db, standup)["extEventId"])
    assert g_standup["recurrence"] == ["RRULE:FREQ=DAILY;COUNT=5"]
    assert g_moment(g_standup["start"]) == at(1, 8) and g_moment(g_standup["end"]) == at(1, 8, 15)
    # Round trip: the next import leaves both rows as the app wrote them, and adds no instance rows.
    sync(cal.user_id)
    again = row(db, offsite)
    assert (again["startDate"], again["endDate"], again["linkAllDay"]) == (day(5), day(7), True)
    assert row(db, standup)["recurrence"] == ["RRULE:FREQ=DAILY;COUNT=5"]
    assert len(events(db, cal.calendar_id)) == 2


def test_app_edit_made_while_its_push_is_in_flight_is_pushed_by_the_next_sync(worker, db, emu) -> None:
    from autosync.services import adhoc

    cal, event_id, ext = _synced(db, emu)
    emu.add_fault("slow", provider="google", endpoint="google.events.patch", delay=1.0)
    app_update(db, event_id, eventName="First edit")
    request = adhoc.enqueue(cal.user_id, None)
    deadline = clock.monotonic() + 10
    while emu.faults()[0]["count"] and clock.monotonic() < deadline:  # the patch has reached Google
        clock.sleep(0.02)
    app_update(db, event_id, eventName="Second edit")
    assert adhoc.wait(request, 30)["done"]
    assert emu.google_get(cal.ext_calendar_id, ext)["summary"] == "First edit"
    run = sync(cal.user_id)["runs"][0]
    assert run["pushUpdated"] == 1
    assert emu.google_get(cal.ext_calendar_id, ext)["summary"] == "Second edit"
    assert row(db, event_id)["eventName"] == "Second edit"
    assert all(r["doneAt"] is not None for r in table(db, "event_outbox", "outboxId"))


# --- 6. conflicts ---------------------------------------------------------------------------------


def test_conflict_latest_policy_app_change_made_later_wins(worker, db, emu) -> None:
    cal, event_id, ext = _synced(db, emu)
    emu.google_patch(cal.ext_calendar_id, ext, {"summary": "Provider title"})
    clock.sleep(0.05)
    app_update(db, event_id, eventName="App title")
    run = sync(cal.user_id)["runs"][0]
    assert run["outcome"] == "ok"
    assert emu.google_get(cal.ext_calendar_id, ext)["summary"] == "App title"
    assert row(db, event_id)["eventName"] == "App title"
    [conflict] = table(db, "sync_conflict", "conflictId")
    assert (conflict["winner"], conflict["policy"], conflict["eventId"]) == ("app", "latest", event_id)
    assert conflict["providerVersion"]["summary"] == "Provider title"
    emu.clear_requests()
    sync(cal.user_id)
    assert g_writes(emu) == [] and row(db, event_id)["eventName"] == "App title"


def test_conflict_latest_policy_provider_change_made_later_wins(worker, db, emu) -> None:
    cal, event_id, ext = _synced(db, emu)
    app_update(db, event_id, eventName="App title")
    clock.sleep(0.05)
    emu.google_patch(cal.ext_calendar_id, ext, {"summary": "Provider title"})
    emu.clear_requests()
    run = sync(cal.user_id)["runs"][0]
    assert run["outcome"] == "ok"
    assert g_writes(emu) == []
    assert emu.google_get(cal.ext_calendar_id, ext)["summary"] == "Provider title"
    assert row(db, event_id)["eventName"] == "Provider title"
    [conflict] = table(db, "sync_conflict", "conflictId")
    assert (conflict["winner"], conflict["eventId"]) == ("provider", event_id)
    assert conflict["appVersion"]["eventName"] == "App title"
    assert table(db, "event_outbox", "outboxId")[-1]["outcome"] == "superseded by provider change"


def test_a_conflict_on_a_large_page_of_a_full_listing_is_still_decided(worker, db, emu) -> None:
    from autosync.store.conflicts import CHECK_FIRST_FROM

    cal, event_id, ext = _synced(db, emu)
    for i in range(CHECK_FIRST_FROM + 50):  # a page of more ids than the store sends without asking first
        emu.google_insert(cal.ext_calendar_id, {"summary": f"Bulk {i}", "start": {"dateTime": _rfc(at(3, 9))},
                                                "end": {"dateTime": _rfc(at(3, 10))}})
    sync(cal.user_id)
    app_update(db, event_id, eventName="App title")
    clock.sleep(0.05)
    emu.google_patch(cal.ext_calendar_id, ext, {"summary": "Provider title"})
    emu.invalidate_cursors(cal.ext_calendar_id)  # the next run lists everything, on one page
    emu.clear_requests()
    run = sync(cal.user_id)["runs"][0]
    assert run["outcome"] == "ok" and run_rows(db, cal.calendar_id)[-1]["fullSync"]
    assert g_writes(emu) == []
    assert row(db, event_id)["eventName"] == "Provider title"
    [conflict] = table(db, "sync_conflict", "conflictId")
    assert (conflict["winner"], conflict["eventId"]) == ("provider", event_id)
    assert conflict["appVersion"]["eventName"] == "App title"


def _rfc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_conflict_won_by_the_app_keeps_the_provider_change_to_another_field_on_both_sides(worker, db, emu) -> None:
    cal, event_id, ext = _synced(db, emu)
    emu.google_patch(cal.ext_calendar_id, ext, {"start": {"dateTime": at(2, 14).isoformat(), "timeZone": "UTC"},
                                                "end": {"dateTime": at(2, 15).isoformat(), "timeZone": "UTC"}})
    clock.sleep(0.05)
    app_update(db, event_id, eventName="App title")
    sync(cal.user_id)
    g = emu.google_get(cal.ext_calendar_id, ext)
    assert g["summary"] == "App title" and g_moment(g["start"]) == at(2, 14)
    mine = row(db, event_id)
    assert mine["eventName"] == "App title"
    assert (mine["startDate"], mine["startTime"], mine["endTime"]) == (day(2), at(2, 14).time(), at(2, 15).time())
    emu.clear_requests()
    sync(cal.user_id)
    assert g_writes(emu) == [] and table(db, "event_outbox", "outboxId")[-1]["doneAt"] is not None


# --- 7. outage ------------------------------------------------------------------------------------


def test_change_made_during_an_outage_is_pushed_once_after_recovery(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    sync(cal.user_id)
    for endpoint in WRITES:
        emu.add_fault("status", count=50, provider="google", endpoint=endpoint, status=503)
    event_id = app_insert(db, cal, "During outage", at(2, 9), at(2, 10))
    run = sync(cal.user_id)["runs"][0]
    assert run["pushFailed"] == 1 and run["pushCreated"] == 0
    failed = emu.requests(provider="google", endpoint="google.events.insert")["requests"]
    assert len(failed) >= 2 and all(r["status"] == 503 for r in failed)  # in-task retries, all refused
    pending = table(db, "event_outbox", "outboxId")[0]
    assert pending["doneAt"] is None and pending["attempts"] == 1 and pending["lastError"]
    assert push_log(db)[-1]["outcome"] == "retry"
    assert row(db, event_id)["extEventId"] is None and g_live(emu, cal) == {}
    emu.clear_faults()
    wait_until_due(db)
    emu.clear_requests()
    run = sync(cal.user_id)["runs"][0]
    assert run["pushCreated"] == 1 and run["pushFailed"] == 0
    ok = [r for r in g_writes(emu) if r["status"] == 200]
    assert [r["endpoint"] for r in ok] == ["google.events.insert"]
    live = g_live(emu, cal)
    assert list(live) == [row(db, event_id)["extEventId"]] and live[row(db, event_id)["extEventId"]][
        "summary"] == "During outage"
    emu.clear_requests()
    sync(cal.user_id)
    assert g_writes(emu) == [] and len(g_live(emu, cal)) == 1


# --- 8. retries without duplicates -------------------------------------------------------------


def test_insert_whose_response_was_lost_is_retried_without_a_duplicate(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    sync(cal.user_id)
    # The first insert is answered after the client's 3 s read timeout (it still creates the event);
    # the retry is held back 1 s so it arrives after that creation.
    emu.add_fault("slow", provider="google", endpoint="google.events.insert", delay=3.4)
    emu.add_fault("slow", provider="google", endpoint="google.events.insert", delay=1.0)
    event_id = app_insert(db, cal, "Exactly once", at(2, 9), at(2, 10))
    run = sync(cal.user_id)["runs"][0]
    assert run["outcome"] == "ok" and run["pushCreated"] == 1 and run["pushFailed"] == 0
    inserts = emu.requests(provider="google", endpoint="google.events.insert")["requests"]
    assert sorted(r["status"] for r in inserts) == [200, 409]  # the retry was told "already exists"
    live = g_live(emu, cal)
    assert list(live) == [row(db, event_id)["extEventId"]]
    sync(cal.user_id)
    assert len(g_live(emu, cal)) == 1 and len(events(db, cal.calendar_id)) == 1


def test_insert_reset_before_it_reached_google_is_retried_once(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    sync(cal.user_id)
    emu.add_fault("reset", count=2, provider="google", endpoint="google.events.insert")
    event_id = app_insert(db, cal, "After resets", at(2, 9), at(2, 10))
    run = sync(cal.user_id)["runs"][0]
    assert run["pushCreated"] == 1 and run["pushFailed"] == 0
    assert list(g_live(emu, cal)) == [row(db, event_id)["extEventId"]]


# --- 9. mass-delete guard -----------------------------------------------------------------------


def _many_synced(db: psycopg.Connection, emu: Any, n: int) -> tuple[Linked, list[int]]:
    cal = link(db, emu, "google")
    ids = [app_insert(db, cal, f"E{i}", at(1 + i % 20, 9), at(1 + i % 20, 10)) for i in range(n)]
    sync(cal.user_id)
    assert len(g_live(emu, cal)) == n
    return cal, ids


def test_app_deleting_most_events_is_blocked_and_nothing_is_deleted(worker, db, emu) -> None:
    cal, ids = _many_synced(db, emu, 12)
    for event_id in ids[:7]:
        app_delete(db, event_id)
    for event_id in ids[7:11]:
        app_update(db, event_id, status=False)
    emu.clear_requests()
    summary = sync(cal.user_id)
    run = summary["runs"][0]
    assert run["outcome"] == "blocked" and run["pushDeleted"] == 0
    error = run_rows(db, cal.calendar_id)[-1]["error"]
    assert "11 of 12" in error and "allow-mass-delete" in error
    assert g_writes(emu) == [] and len(g_live(emu, cal)) == 12
    assert all(r["doneAt"] is None for r in table(db, "event_outbox", "outboxId") if r["op"] == "delete")
    # An operator's explicit consent lets the held-back deletes through.
    from autosync.services import adhoc

    done = adhoc.wait(adhoc.enqueue(cal.user_id, None, calendar_id=cal.calendar_id, allow_mass_delete=True), 30)
    assert done["runs"][0]["outcome"] == "ok" and done["runs"][0]["pushDeleted"] == 11
    assert len(g_live(emu, cal)) == 1


def test_mass_delete_ratio_counts_hard_deleted_rows_in_the_total(worker, db, emu) -> None:
    cal, ids = _many_synced(db, emu, 20)
    for event_id in ids[:10]:  # exactly half: not more than 50%
        app_delete(db, event_id)
    run = sync(cal.user_id)["runs"][0]
    assert run["outcome"] == "ok" and run["pushDeleted"] == 10
    assert len(g_live(emu, cal)) == 10


def test_push_with_a_refused_token_refreshes_once_and_goes_through(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    sync(cal.user_id)
    event_id = app_insert(db, cal, "Pushed after a 401", at(3, 9), at(3, 10))
    emu.add_fault(provider="google", endpoint="google.events.insert", count=1, status=401, body={"error": {
        "errors": [{"domain": "global", "reason": "authError", "message": "Invalid Credentials",
                    "locationType": "header", "location": "Authorization"}], "code": 401,
        "message": "Invalid Credentials"}})
    emu.clear_requests()
    summary = sync(cal.user_id)
    assert summary["runs"][0]["outcome"] == "ok" and summary["runs"][0]["pushCreated"] == 1
    assert row(db, event_id)["extEventId"]
    assert emu.requests(provider="google", endpoint="google.token")["total"] == 1
    inserts = emu.requests(provider="google", endpoint="google.events.insert")["requests"]
    assert [r["status"] for r in inserts] == [401, 200]


def test_withdrawn_declined_and_deleted_shares_leave_the_google_attendee_list(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    bob, carol = add_user(db, "bob@example.org", "Bob"), add_user(db, "carol@example.org", "Carol")
    event_id = app_insert(db, cal, "Review", at(2, 9), at(2, 10))
    share(db, event_id, bob, shared_status=1)
    share(db, event_id, carol, shared_status=1)
    share_external(db, event_id, "erin@outside.net")
    share_external(db, event_id, "frank@outside.net")
    sync(cal.user_id)
    ext = row(db, event_id)["extEventId"]
    emails = lambda: sorted(a["email"] for a in emu.google_get(cal.ext_calendar_id, ext).get("attendees", []))  # noqa: E731
    assert emails() == ["bob@example.org", "carol@example.org", "erin@outside.net", "frank@outside.net"]
    # A provider-side edit makes the next import rewrite the row, attendees included.
    emu.google_patch(cal.ext_calendar_id, ext, {"summary": "Review (room changed)"})
    sync(cal.user_id)
    assert sorted(a["email"] for a in row(db, event_id)["attendees"]) == emails()
    db.execute('UPDATE cal_event_share SET status = false WHERE "sharedUser" = %s', (bob,))       # withdrawn
    db.execute('UPDATE cal_event_share SET "sharedStatus" = 2 WHERE "sharedUser" = %s', (carol,))  # declined
    db.execute("DELETE FROM non_reg_user_share WHERE email = 'erin@outside.net'")                # deleted
    run = sync(cal.user_id)["runs"][0]
    assert run["pushUpdated"] == 1 and run["outcome"] == "ok"
    assert emails() == ["frank@outside.net"]
    # Sharing again brings the attendee back.
    db.execute("INSERT INTO non_reg_user_share (\"activityId\", \"activityType\", email) VALUES (%s, 2, %s)",
               (event_id, "erin@outside.net"))
    sync(cal.user_id)
    assert emails() == ["erin@outside.net", "frank@outside.net"]


def test_provider_reminder_change_is_kept_in_the_row_when_the_app_wins_the_conflict(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    event_id = app_insert(db, cal, "Dentist", at(4, 9), at(4, 10))
    sync(cal.user_id)
    ext = row(db, event_id)["extEventId"]
    emu.google_patch(cal.ext_calendar_id, ext, {"reminders": {"useDefault": False,
                                                              "overrides": [{"method": "popup", "minutes": 42}]}})
    app_update(db, event_id, eventName="Dentist (moved desk)")
    sync(cal.user_id)
    on_google = emu.google_get(cal.ext_calendar_id, ext)
    assert on_google["summary"] == "Dentist (moved desk)"
    assert on_google["reminders"]["overrides"] == [{"method": "popup", "minutes": 42}]
    stored = row(db, event_id)
    assert stored["eventName"] == "Dentist (moved desk)"
    assert stored["reminders"] == [{"method": "popup", "minutes": 42}] and stored["remindersUseDefault"] is False


def test_an_app_row_that_cannot_be_pushed_is_recorded_and_does_not_block_the_others(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    bad = _insert(db, {"calendarId": cal.calendar_id, "createdBy": cal.user_id, "eventName": "No dates"})
    good = app_insert(db, cal, "Fine", at(2, 9), at(2, 10))
    run = sync(cal.user_id)["runs"][0]
    assert run["pushCreated"] == 1 and run["pushFailed"] == 1
    assert row(db, good)["extEventId"] and row(db, bad)["extEventId"] is None
    failed = db.execute('SELECT outcome, "lastError" FROM event_outbox WHERE "eventId" = %s', (bad,)).fetchone()
    assert failed[0] == "failed" and failed[1]
    assert [e["summary"] for e in g_live(emu, cal).values()] == ["Fine"]
    logged = [r for r in push_log(db) if r["eventId"] == bad]
    assert logged and logged[-1]["outcome"] == "failed"

"""Outlook sync-back end to end: app writes on cal_event and the share tables reach Graph exactly once."""

from __future__ import annotations

import time as clock
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from autosync.services import adhoc
from tests.e2e.helpers import Linked, events, link, run_rows, sync
from tests.e2e.test_pushback_google import (
    add_user,
    app_delete,
    app_insert,
    app_insert_all_day,
    app_move,
    app_update,
    at,
    day,
    push_log,
    row,
    share,
    share_external,
    table,
    wait_until_due,
)

WRITES = ("graph.events.create", "graph.events.update", "graph.events.delete")


def _q(value: str) -> str:
    return quote(value, safe="")


def o_get(emu: Any, ext: str) -> dict[str, Any]:
    """One Outlook event as Graph renders it (times in UTC)."""
    result: dict[str, Any] = emu.outlook("GET", f"/events/{_q(ext)}")
    return result


def o_live(emu: Any, cal: Linked) -> dict[str, dict[str, Any]]:
    """Stored, not deleted Outlook items of the calendar (masters, singles, exceptions), by id."""
    stored = emu.outlook("GET", f"/calendars/{_q(cal.ext_calendar_id)}/events")["value"]
    return {e["id"]: e for e in stored if not e["deleted"]}


def o_moment(value: dict[str, str]) -> datetime:
    """A Graph dateTimeTimeZone rendered in UTC, as an aware datetime."""
    assert value["timeZone"] == "UTC", value
    return datetime.fromisoformat(value["dateTime"][:19]).replace(tzinfo=UTC)


def o_writes(emu: Any) -> list[dict[str, Any]]:
    """Logged Graph write requests (create, update, delete)."""
    return [r for ep in WRITES for r in emu.requests(provider="outlook", endpoint=ep)["requests"]]


def _synced(db: Any, emu: Any, name: str = "Lunch", email: str = "alice@example.com") -> tuple[Linked, int, str]:
    cal = link(db, emu, "outlook", email)
    event_id = app_insert(db, cal, name, at(2, 12), at(2, 13))
    run = sync(cal.user_id)["runs"][0]
    assert run["outcome"] == "ok", run
    ext = row(db, event_id)["extEventId"]
    assert ext
    return cal, event_id, ext


# --- 1. create ------------------------------------------------------------------------------------


def test_app_insert_is_created_in_outlook_logged_and_not_echoed(worker, db, emu) -> None:
    cal = link(db, emu, "outlook")
    event_id = app_insert(db, cal, "Lunch with Ana", at(2, 12), at(2, 13, 30), location="Cafe Central")
    run = sync(cal.user_id)["runs"][0]
    assert run["outcome"] == "ok" and run["pushCreated"] == 1 and run["pushFailed"] == 0, run
    ext = row(db, event_id)["extEventId"]
    assert ext
    o = o_get(emu, ext)
    assert (o["subject"], o["location"]["displayName"]) == ("Lunch with Ana", "Cafe Central")
    assert o_moment(o["start"]) == at(2, 12) and o_moment(o["end"]) == at(2, 13, 30)
    assert list(o_live(emu, cal)) == [ext]
    [entry] = push_log(db)
    assert (entry["op"], entry["eventId"], entry["outcome"], entry["extEventId"]) == ("insert", event_id, "ok", ext)
    assert entry["calendarType"] == 2
    synced_at = row(db, event_id)["syncedAt"]
    emu.clear_requests()
    again = sync(cal.user_id)["runs"][0]
    assert (again["pushCreated"], again["pushUpdated"], again["pushDeleted"]) == (0, 0, 0)
    assert o_writes(emu) == []
    outbox = table(db, "event_outbox", "outboxId")
    assert len(outbox) == 1 and all(r["doneAt"] is not None for r in outbox) and len(push_log(db)) == 1
    assert row(db, event_id)["syncedAt"] == synced_at
    assert list(events(db, cal.calendar_id)) == [ext]


# --- 2. update ------------------------------------------------------------------------------------


def test_app_rename_and_move_patch_outlook_and_keep_its_attendees_and_meeting(worker, db, emu) -> None:
    cal, event_id, ext = _synced(db, emu)
    emu.outlook("PATCH", f"/events/{_q(ext)}", {
        "attendees": [{"emailAddress": {"address": "bob@contoso.com", "name": "Bob"}, "type": "required"}],
        "isOnlineMeeting": True, "onlineMeetingProvider": "teamsForBusiness"})
    sync(cal.user_id)
    assert row(db, event_id)["attendees"][0]["email"] == "bob@contoso.com"
    before = o_get(emu, ext)
    assert before["isOnlineMeeting"] and before["onlineMeeting"]["joinUrl"]
    app_move(db, event_id, at(3, 15), at(3, 16), eventName="Lunch (moved)")
    emu.clear_requests()
    run = sync(cal.user_id)["runs"][0]
    assert run["outcome"] == "ok" and run["pushUpdated"] == 1, run
    assert [r["endpoint"] for r in o_writes(emu)] == ["graph.events.update"]
    after = o_get(emu, ext)
    assert after["subject"] == "Lunch (moved)"
    assert o_moment(after["start"]) == at(3, 15) and o_moment(after["end"]) == at(3, 16)
    assert [a["emailAddress"]["address"] for a in after["attendees"]] == ["bob@contoso.com"]
    assert after["onlineMeeting"] == before["onlineMeeting"] and after["isOnlineMeeting"]
    emu.clear_requests()
    sync(cal.user_id)
    assert o_writes(emu) == []


# --- 3. delete ------------------------------------------------------------------------------------


def test_status_false_and_row_delete_remove_the_event_in_outlook(worker, db, emu) -> None:
    cal = link(db, emu, "outlook")
    hidden = app_insert(db, cal, "Hidden", at(1, 9), at(1, 10))
    dropped = app_insert(db, cal, "Dropped", at(2, 9), at(2, 10))
    kept = app_insert(db, cal, "Kept", at(3, 9), at(3, 10))
    sync(cal.user_id)
    ids = {e: row(db, e)["extEventId"] for e in (hidden, dropped, kept)}
    app_update(db, hidden, status=False)
    app_delete(db, dropped)
    run = sync(cal.user_id)["runs"][0]
    assert run["outcome"] == "ok" and run["pushDeleted"] == 2 and run["pushFailed"] == 0, run
    assert list(o_live(emu, cal)) == [ids[kept]]
    emu.clear_requests()
    sync(cal.user_id)
    assert o_writes(emu) == []


def test_deleting_an_event_already_gone_in_outlook_counts_as_success(worker, db, emu) -> None:
    cal, event_id, ext = _synced(db, emu)
    emu.outlook("DELETE", f"/events/{_q(ext)}")
    app_delete(db, event_id)
    emu.clear_requests()
    run = sync(cal.user_id)["runs"][0]
    assert run["outcome"] == "ok" and run["pushDeleted"] == 1 and run["pushFailed"] == 0, run
    assert [r["status"] for r in o_writes(emu)] == [404]  # ErrorItemNotFound
    outbox = table(db, "event_outbox", "outboxId")[-1]
    assert (outbox["op"], outbox["outcome"]) == ("delete", "ok")
    assert o_live(emu, cal) == {}


# --- 4. attendees from the share tables ---------------------------------------------------------


def test_shares_become_outlook_attendees_with_the_seed_rules(worker, db, emu) -> None:
    cal = link(db, emu, "outlook")
    bob = add_user(db, "bob@example.org", "Bob", "Builder")
    carol = add_user(db, "carol@example.org", "Carol")
    dave = add_user(db, "dave@example.org", "Dave")
    event_id = app_insert(db, cal, "Planning", at(4, 10), at(4, 11))
    share(db, event_id, bob, shared_status=1)
    share(db, event_id, carol, shared_status=2)
    share(db, event_id, dave, status=False)
    share(db, event_id, cal.user_id)
    share_external(db, event_id, "erin@outside.net")
    share_external(db, event_id, "frank@outside.net", activity_type=1)
    sync(cal.user_id)
    ext = row(db, event_id)["extEventId"]
    got = {a["emailAddress"]["address"]: a for a in o_get(emu, ext)["attendees"]}
    assert set(got) == {"bob@example.org", "erin@outside.net"}
    assert got["bob@example.org"]["emailAddress"]["name"] == "Bob Builder"
    share_external(db, event_id, "gina@outside.net")
    run = sync(cal.user_id)["runs"][0]
    assert run["pushUpdated"] == 1
    emails = {a["emailAddress"]["address"] for a in o_get(emu, ext)["attendees"]}
    assert emails == {"bob@example.org", "erin@outside.net", "gina@outside.net"}


# --- 5. all-day and recurring -------------------------------------------------------------------


def test_all_day_and_recurring_app_events_are_written_correctly(worker, db, emu) -> None:
    cal = link(db, emu, "outlook")
    offsite = app_insert_all_day(db, cal, "Offsite", day(5), day(7))
    standup = app_insert(db, cal, "Standup", at(1, 8), at(1, 8, 15), recurrence=["RRULE:FREQ=DAILY;COUNT=5"])
    run = sync(cal.user_id)["runs"][0]
    assert run["pushCreated"] == 2 and run["pushFailed"] == 0, run
    o_offsite = o_get(emu, row(db, offsite)["extEventId"])
    assert o_offsite["isAllDay"] is True
    assert o_offsite["start"]["dateTime"].startswith(f"{day(5)}T00:00:00")
    assert o_offsite["end"]["dateTime"].startswith(f"{day(8)}T00:00:00")  # exclusive end
    o_standup = o_get(emu, row(db, standup)["extEventId"])
    assert o_standup["type"] == "seriesMaster"
    rec = o_standup["recurrence"]
    assert (rec["pattern"]["type"], rec["pattern"]["interval"]) == ("daily", 1)
    assert (rec["range"]["type"], rec["range"]["numberOfOccurrences"]) == ("numbered", 5)
    assert rec["range"]["startDate"] == day(1).isoformat()
    assert o_moment(o_standup["start"]) == at(1, 8) and o_moment(o_standup["end"]) == at(1, 8, 15)
    sync(cal.user_id)
    again = row(db, offsite)
    assert (again["startDate"], again["endDate"], again["linkAllDay"]) == (day(5), day(7), True)
    assert row(db, standup)["recurrence"][0].startswith("RRULE:FREQ=DAILY")
    assert len(events(db, cal.calendar_id, live_only=True)) == 2


# --- 6. conflicts ---------------------------------------------------------------------------------


def test_conflict_latest_policy_app_change_made_later_wins(worker, db, emu) -> None:
    cal, event_id, ext = _synced(db, emu)
    emu.outlook("PATCH", f"/events/{_q(ext)}", {"subject": "Provider title"})
    clock.sleep(0.05)
    app_update(db, event_id, eventName="App title")
    run = sync(cal.user_id)["runs"][0]
    assert run["outcome"] == "ok", run
    assert o_get(emu, ext)["subject"] == "App title" and row(db, event_id)["eventName"] == "App title"
    [conflict] = table(db, "sync_conflict", "conflictId")
    assert (conflict["winner"], conflict["policy"], conflict["eventId"]) == ("app", "latest", event_id)
    assert conflict["providerVersion"]["subject"] == "Provider title"


def test_conflict_latest_policy_provider_change_made_later_wins(worker, db, emu) -> None:
    cal, event_id, ext = _synced(db, emu)
    app_update(db, event_id, eventName="App title")
    clock.sleep(0.05)
    emu.outlook("PATCH", f"/events/{_q(ext)}", {"subject": "Provider title"})
    emu.clear_requests()
    run = sync(cal.user_id)["runs"][0]
    assert run["outcome"] == "ok", run
    assert o_writes(emu) == []
    assert o_get(emu, ext)["subject"] == "Provider title" and row(db, event_id)["eventName"] == "Provider title"
    [conflict] = table(db, "sync_conflict", "conflictId")
    assert (conflict["winner"], conflict["eventId"]) == ("provider", event_id)
    assert conflict["appVersion"]["eventName"] == "App title"


# --- 7. outage ------------------------------------------------------------------------------------


def test_change_made_during_an_outage_is_pushed_once_after_recovery(worker, db, emu) -> None:
    cal = link(db, emu, "outlook")
    sync(cal.user_id)
    for endpoint in WRITES:
        emu.add_fault("status", count=50, provider="outlook", endpoint=endpoint, status=503)
    event_id = app_insert(db, cal, "During outage", at(2, 9), at(2, 10))
    run = sync(cal.user_id)["runs"][0]
    assert run["pushFailed"] == 1 and run["pushCreated"] == 0, run
    failed = emu.requests(provider="outlook", endpoint="graph.events.create")["requests"]
    assert len(failed) >= 2 and all(r["status"] == 503 for r in failed)
    assert table(db, "event_outbox", "outboxId")[0]["doneAt"] is None and o_live(emu, cal) == {}
    emu.clear_faults()
    wait_until_due(db)
    emu.clear_requests()
    run = sync(cal.user_id)["runs"][0]
    assert run["pushCreated"] == 1 and run["pushFailed"] == 0, run
    assert [r["endpoint"] for r in o_writes(emu)] == ["graph.events.create"]
    live = o_live(emu, cal)
    assert list(live) == [row(db, event_id)["extEventId"]]
    emu.clear_requests()
    sync(cal.user_id)
    assert o_writes(emu) == [] and len(o_live(emu, cal)) == 1


# --- 8. retries without duplicates -------------------------------------------------------------


def test_create_whose_response_was_lost_is_retried_without_a_duplicate(worker, db, emu) -> None:
    cal = link(db, emu, "outlook")
    sync(cal.user_id)
    emu.add_fault("slow", provider="outlook", endpoint="graph.events.create", delay=3.4)
    emu.add_fault("slow", provider="outlook", endpoint="graph.events.create", delay=1.0)
    event_id = app_insert(db, cal, "Exactly once", at(2, 9), at(2, 10))
    run = sync(cal.user_id)["runs"][0]
    assert run["outcome"] == "ok" and run["pushCreated"] == 1 and run["pushFailed"] == 0, run
    creates = emu.requests(provider="outlook", endpoint="graph.events.create")["requests"]
    assert len(creates) == 2
    assert list(o_live(emu, cal)) == [row(db, event_id)["extEventId"]]
    sync(cal.user_id)
    assert len(o_live(emu, cal)) == 1 and len(events(db, cal.calendar_id)) == 1


# --- 9. mass-delete guard -----------------------------------------------------------------------


def test_app_deleting_most_events_is_blocked_and_nothing_is_deleted(worker, db, emu) -> None:
    cal = link(db, emu, "outlook")
    ids = [app_insert(db, cal, f"E{i}", at(1 + i, 9), at(1 + i, 10)) for i in range(12)]
    sync(cal.user_id)
    assert len(o_live(emu, cal)) == 12
    for event_id in ids[:11]:
        app_delete(db, event_id)
    emu.clear_requests()
    run = sync(cal.user_id)["runs"][0]
    assert run["outcome"] == "blocked" and run["pushDeleted"] == 0, run
    error = run_rows(db, cal.calendar_id)[-1]["error"]
    assert "11 of 12" in error and "allow-mass-delete" in error
    assert o_writes(emu) == [] and len(o_live(emu, cal)) == 12
    done = adhoc.wait(adhoc.enqueue(cal.user_id, None, calendar_id=cal.calendar_id, allow_mass_delete=True), 30)
    assert done["runs"][0]["outcome"] == "ok" and done["runs"][0]["pushDeleted"] == 11
    assert len(o_live(emu, cal)) == 1


def test_withdrawn_and_deleted_shares_leave_the_outlook_attendee_list(worker, db, emu) -> None:
    cal = link(db, emu, "outlook")
    bob = add_user(db, "bob@contoso.com", "Bob")
    event_id = app_insert(db, cal, "Review", at(2, 9), at(2, 10))
    share(db, event_id, bob, shared_status=1)
    share_external(db, event_id, "erin@outside.net")
    sync(cal.user_id)
    ext = row(db, event_id)["extEventId"]

    def emails() -> list[str]:
        return sorted(a["emailAddress"]["address"].lower() for a in o_get(emu, ext).get("attendees", []))

    assert emails() == ["bob@contoso.com", "erin@outside.net"]
    db.execute('UPDATE cal_event_share SET status = false WHERE "sharedUser" = %s', (bob,))
    sync(cal.user_id)
    assert emails() == ["erin@outside.net"]
    db.execute("DELETE FROM non_reg_user_share WHERE email = 'erin@outside.net'")
    sync(cal.user_id)
    assert emails() == []

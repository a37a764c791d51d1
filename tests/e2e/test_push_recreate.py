"""Re-creating an event gone at the provider, end to end: no duplicate when an answer is lost, and a
deleted event that holds our id is never taken for a pushed one.

A lost answer is a request the emulator processes after the client's read timeout (3 s in the
tests): it takes effect, but the client sees a timeout. Four of them in a row exhaust the in-task
retries, so the push waits for the next run and tries again from scratch.
"""

from __future__ import annotations

from typing import Any

from autosync.services.syncback_rules import google_event_id
from tests.e2e.helpers import Linked, link, sync
from tests.e2e.test_pushback_google import app_insert, app_update, at, row, table, wait_until_due
from tests.e2e.test_pushback_outlook import _q, o_get, o_live

LOST = 4  # the first attempt and the edge's three retries


def _g_live(emu: Any, cal: Linked) -> dict[str, dict[str, Any]]:
    return {e["id"]: e for e in emu.google_list(cal.ext_calendar_id) if e.get("status") != "cancelled"}


def _lose_answers(emu: Any, provider: str, endpoint: str) -> None:
    emu.add_fault("slow", count=LOST, provider=provider, endpoint=endpoint, delay=3.4)


def _synced(db: Any, emu: Any, provider: str) -> tuple[Linked, int, str]:
    cal = link(db, emu, provider)
    event_id = app_insert(db, cal, "Lunch", at(2, 12), at(2, 13))
    assert sync(cal.user_id)["runs"][0]["pushCreated"] == 1
    return cal, event_id, row(db, event_id)["extEventId"]


def _two_syncs(db: Any, cal: Linked) -> None:
    """The run whose re-creation loses every answer, then the run that retries it."""
    first = sync(cal.user_id, timeout=60)["runs"][0]
    assert first["outcome"] == "ok" and first["pushFailed"] == 1, first
    wait_until_due(db)
    second = sync(cal.user_id)["runs"][0]
    assert second["outcome"] == "ok" and second["pushFailed"] == 0, second


def test_google_re_creation_whose_answer_was_lost_makes_one_event(worker, db, emu) -> None:
    cal, event_id, gone = _synced(db, emu, "google")
    emu.google_delete(cal.ext_calendar_id, gone)
    # Google refuses the PATCH of the gone event (as for an event moved to another calendar).
    emu.add_fault("status", count=2, provider="google", endpoint="google.events.patch", status=404)
    app_update(db, event_id, eventName="Lunch (edited)")
    _lose_answers(emu, "google", "google.events.insert")
    emu.clear_requests()
    _two_syncs(db, cal)
    live = _g_live(emu, cal)
    assert [e["summary"] for e in live.values()] == ["Lunch (edited)"]
    assert list(live) == [row(db, event_id)["extEventId"]] == [google_event_id(cal.calendar_id, event_id, gone)]
    inserts = emu.requests(provider="google", endpoint="google.events.insert")["requests"]
    assert len(inserts) == LOST + 1  # the retry asked for the same id


def test_outlook_re_creation_whose_answer_was_lost_makes_one_event(worker, db, emu) -> None:
    cal, event_id, gone = _synced(db, emu, "outlook")
    emu.outlook("DELETE", f"/events/{_q(gone)}")
    app_update(db, event_id, eventName="Lunch (edited)")
    _lose_answers(emu, "outlook", "graph.events.create")
    _two_syncs(db, cal)
    live = o_live(emu, cal)
    assert list(live) == [row(db, event_id)["extEventId"]]
    assert o_get(emu, next(iter(live)))["subject"] == "Lunch (edited)"


def test_google_edit_of_an_event_deleted_there_brings_it_back_once(worker, db, emu) -> None:
    cal, event_id, gone = _synced(db, emu, "google")
    emu.google_delete(cal.ext_calendar_id, gone)
    app_update(db, event_id, eventName="Lunch (still on)")  # made after the deletion: the app wins
    run = sync(cal.user_id)["runs"][0]
    assert run["outcome"] == "ok" and run["pushUpdated"] == 1, run
    live = _g_live(emu, cal)
    assert [e["summary"] for e in live.values()] == ["Lunch (still on)"]
    assert list(live) == [row(db, event_id)["extEventId"]] and row(db, event_id)["status"]
    sync(cal.user_id)
    assert len(_g_live(emu, cal)) == 1 and row(db, event_id)["status"]


def _created_then_lost(db: Any, emu: Any) -> tuple[Linked, int, str]:
    """An app event whose create reached Google while every answer was lost."""
    cal = link(db, emu, "google")
    sync(cal.user_id)
    _lose_answers(emu, "google", "google.events.insert")
    event_id = app_insert(db, cal, "Party", at(3, 18), at(3, 22))
    first = sync(cal.user_id, timeout=60)["runs"][0]
    assert first["pushFailed"] == 1 and row(db, event_id)["extEventId"] is None
    made = google_event_id(cal.calendar_id, event_id)
    assert list(_g_live(emu, cal)) == [made]
    return cal, event_id, made


def test_a_create_that_finds_its_event_deleted_since_keeps_the_later_deletion(worker, db, emu) -> None:
    cal, event_id, made = _created_then_lost(db, emu)
    emu.google_delete(cal.ext_calendar_id, made)  # someone deleted it in Google after it appeared
    wait_until_due(db)
    emu.clear_requests()
    run = sync(cal.user_id)["runs"][0]
    assert run["outcome"] == "ok" and run["pushCreated"] == 0 and run["pushFailed"] == 0, run
    kept = row(db, event_id)
    assert kept["extEventId"] == made and not kept["status"]  # the app shows the deletion
    assert _g_live(emu, cal) == {}
    assert [r["status"] for r in emu.requests(provider="google", endpoint="google.events.insert")["requests"]] \
        == [409]
    [conflict] = table(db, "sync_conflict", "conflictId")
    assert (conflict["winner"], conflict["extEventId"]) == ("provider", made)
    [entry] = table(db, "event_outbox", "outboxId")
    assert entry["outcome"] == "superseded by provider change" and entry["doneAt"] is not None
    sync(cal.user_id)
    assert _g_live(emu, cal) == {} and not row(db, event_id)["status"]


def test_a_create_that_finds_its_event_deleted_before_a_later_app_edit_brings_it_back(worker, db, emu) -> None:
    cal, event_id, made = _created_then_lost(db, emu)
    emu.google_delete(cal.ext_calendar_id, made)
    app_update(db, event_id, eventName="Party (moved inside)")  # the app's edit is the later change
    wait_until_due(db)
    run = sync(cal.user_id)["runs"][0]
    assert run["outcome"] == "ok" and run["pushCreated"] == 1, run
    live = _g_live(emu, cal)
    again = google_event_id(cal.calendar_id, event_id, made)
    assert list(live) == [again] and live[again]["summary"] == "Party (moved inside)"
    assert row(db, event_id)["extEventId"] == again and row(db, event_id)["status"]
    [conflict] = table(db, "sync_conflict", "conflictId")
    assert (conflict["winner"], conflict["extEventId"]) == ("app", made)
    sync(cal.user_id)
    assert list(_g_live(emu, cal)) == [again]

"""The mass-delete guard decides over a whole run, and `autosync sync --dry-run` previews a run.

Real worker, PostgreSQL, Redis and the emulator over HTTP; Google pages of 5 events, so a run's
deletions spread over several pages that commit one by one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from tests.e2e.helpers import Linked, events, link, run_rows, sync
from tests.e2e.procs import cli
from tests.e2e.test_pushback_google import app_insert, at, g_live, g_writes


@contextmanager
def pages_of(size: int) -> Iterator[None]:
    """Workers of this process list Google calendars ``size`` events a page."""
    from autosync.services import context as ctxmod
    from autosync.settings import get_settings

    saved = ctxmod._ctx, ctxmod._pid
    ctxmod._ctx, ctxmod._pid = ctxmod.build(replace(get_settings(), google_page_size=size)), os.getpid()
    try:
        yield
    finally:
        ctxmod._ctx, ctxmod._pid = saved


def _timed(summary: str, offset: int) -> dict[str, Any]:
    d = (datetime.now(UTC) + timedelta(days=offset)).date().isoformat()
    return {"summary": summary, "start": {"dateTime": f"{d}T09:00:00Z"}, "end": {"dateTime": f"{d}T10:00:00Z"}}


def _calendar_with(db: psycopg.Connection, emu: Any, n: int) -> tuple[Linked, list[str]]:
    cal = link(db, emu, "google")
    ids = [emu.google_insert(cal.ext_calendar_id, _timed(f"E{i}", 1 + i % 20))["id"] for i in range(n)]
    sync(cal.user_id)
    assert len(events(db, cal.calendar_id, live_only=True)) == n
    return cal, ids


def _request(cal: Linked, **options: bool) -> dict[str, Any]:
    from autosync.services import adhoc

    summary = adhoc.wait(adhoc.enqueue(cal.user_id, None, calendar_id=cal.calendar_id, **options), 60)
    assert summary["done"], summary
    return summary["runs"][0]


def _calendar_row(db: psycopg.Connection, cal: Linked) -> tuple[Any, ...]:
    found = db.execute('SELECT "deltaLink", "lastOutcome", "lastError", "lastSyncDate" FROM calendar '
                       'WHERE "calendarId" = %s', (cal.calendar_id,)).fetchone()
    assert found is not None
    return tuple(found)


def test_a_multi_page_run_applies_none_of_its_deletes_when_its_total_is_too_many(worker, db, emu) -> None:
    with pages_of(5):
        cal, ids = _calendar_with(db, emu, 20)
        for ext in ids[:12]:  # 5 + 5 + 2 over three pages: each page alone is under the guard's minimum
            emu.google_delete(cal.ext_calendar_id, ext)
        run = sync(cal.user_id)["runs"][0]
        assert run["outcome"] == "blocked" and run["pagesFetched"] >= 3, run
        assert "import would delete 12 of 20 events" in run["error"]
        assert len(events(db, cal.calendar_id, live_only=True)) == 20, "a page applied deletes before the guard"
        assert run["eventsDeleted"] == 0
        assert db.execute("SELECT count(*) FROM sync_pending_delete").fetchone() == (0,)
        # The next run still sees the deletions (the cursor did not move), and consent applies them all.
        consented = _request(cal, allow_mass_delete=True)
        assert consented["outcome"] == "ok" and consented["eventsDeleted"] == 12
        assert set(events(db, cal.calendar_id, live_only=True)) == set(ids[12:])


def test_deletes_spread_over_pages_under_the_ratio_are_applied_at_the_end_of_the_run(worker, db, emu) -> None:
    with pages_of(5):
        cal, ids = _calendar_with(db, emu, 30)
        for ext in ids[:12]:  # 12 of 30: over the minimum, under half
            emu.google_delete(cal.ext_calendar_id, ext)
        run = sync(cal.user_id)["runs"][0]
        assert run["outcome"] == "ok" and run["eventsDeleted"] == 12 and run["pagesFetched"] >= 3
        assert set(events(db, cal.calendar_id, live_only=True)) == set(ids[12:])


def test_a_calendar_under_the_minimum_may_be_emptied_by_its_owner(worker, db, emu) -> None:
    cal, ids = _calendar_with(db, emu, 5)
    for ext in ids:
        emu.google_delete(cal.ext_calendar_id, ext)
    run = sync(cal.user_id)["runs"][0]
    assert run["outcome"] == "ok" and run["eventsDeleted"] == 5
    assert events(db, cal.calendar_id, live_only=True) == {}
    # An imported deletion only marks the row cancelled: it can be undone.
    assert len(events(db, cal.calendar_id)) == 5


def test_dry_run_shows_what_a_run_would_import_delete_and_push_and_writes_none_of_it(worker, db, emu) -> None:
    cal, ids = _calendar_with(db, emu, 3)
    emu.google_insert(cal.ext_calendar_id, _timed("New at Google", 4))
    emu.google_patch(cal.ext_calendar_id, ids[0], {"summary": "Renamed at Google"})
    emu.google_delete(cal.ext_calendar_id, ids[1])
    app_event = app_insert(db, cal, "New in the app", at(3, 9), at(3, 10))
    before_rows = {k: (v["eventName"], v["status"], v["syncedAt"]) for k, v in events(db, cal.calendar_id).items()}
    before_cal = _calendar_row(db, cal)
    emu.clear_requests()
    dry = _request(cal, dry_run=True)
    assert dry["dryRun"] is True and dry["outcome"] == "ok", dry
    assert (dry["eventsUpserted"], dry["eventsDeleted"], dry["pushCreated"]) == (2, 1, 1)
    # Nothing written: events, cursor, calendar outcome, outbox; nothing sent to Google.
    assert {k: (v["eventName"], v["status"], v["syncedAt"])
            for k, v in events(db, cal.calendar_id).items()} == before_rows
    assert _calendar_row(db, cal) == before_cal
    assert db.execute('SELECT "doneAt" FROM event_outbox WHERE "eventId" = %s', (app_event,)).fetchone() == (None,)
    assert g_writes(emu) == []
    # The real run then does what the preview said.
    real = _request(cal)
    assert real["dryRun"] is False and real["outcome"] == "ok"
    assert (real["eventsUpserted"], real["eventsDeleted"], real["pushCreated"]) == (2, 1, 1)


def test_an_operator_previews_a_blocked_run_with_the_cli_before_consenting(worker, db, emu) -> None:
    with pages_of(5):
        cal, ids = _calendar_with(db, emu, 20)
        for ext in ids[:15]:
            emu.google_delete(cal.ext_calendar_id, ext)
        blocked = sync(cal.user_id)["runs"][0]
        assert blocked["outcome"] == "blocked" and "--dry-run" in blocked["error"]
        before = _calendar_row(db, cal)
        out = cli("sync", "--calendar", str(cal.calendar_id), "--dry-run", env=dict(os.environ))
        assert out.returncode == 1, out.stderr  # as the real run would: blocked
        preview = json.loads(out.stdout)
        assert preview["dryRun"] is True
        (run,) = preview["runs"]
        assert run["dryRun"] is True and run["outcome"] == "blocked"
        assert run["eventsDeleted"] == 15 and "15 of 20" in run["error"]  # what consent would delete
        assert len(events(db, cal.calendar_id, live_only=True)) == 20
        assert _calendar_row(db, cal) == before  # the calendar still shows the real run's outcome
        done = _request(cal, allow_mass_delete=True)
        assert done["outcome"] == "ok" and done["eventsDeleted"] == 15
        assert set(events(db, cal.calendar_id, live_only=True)) == set(ids[15:])
        assert len(g_live(emu, cal)) == 5
        assert [r["dryRun"] for r in run_rows(db, cal.calendar_id)] == [False, False, True, False]


def test_outlook_dry_run_counts_a_round_and_writes_nothing(worker, db, emu) -> None:
    from urllib.parse import quote

    from tests.e2e.test_outlook_pull import _create, _event, _series

    cal = link(db, emu, "outlook")
    a = _create(emu, cal.ext_calendar_id, _event("A", 2, 9))
    b = _create(emu, cal.ext_calendar_id, _event("B", 3, 9))
    _series(emu, cal.ext_calendar_id, (datetime.now(UTC) + timedelta(days=5)).date())
    sync(cal.user_id)
    emu.outlook("PATCH", f"/events/{quote(a['id'], safe='')}", {"subject": "A renamed"})
    emu.outlook("DELETE", f"/events/{quote(b['id'], safe='')}")
    _create(emu, cal.ext_calendar_id, _event("C", 4, 9))
    before_rows = {k: (v["eventName"], v["status"], v["syncedAt"]) for k, v in events(db, cal.calendar_id).items()}
    before_cal = _calendar_row(db, cal)
    dry = _request(cal, dry_run=True)
    assert dry["dryRun"] is True and dry["outcome"] == "ok", dry
    assert (dry["eventsUpserted"], dry["eventsDeleted"]) == (2, 1)
    assert {k: (v["eventName"], v["status"], v["syncedAt"])
            for k, v in events(db, cal.calendar_id).items()} == before_rows
    assert _calendar_row(db, cal) == before_cal
    real = _request(cal)
    assert (real["outcome"], real["eventsUpserted"], real["eventsDeleted"]) == ("ok", 2, 1)

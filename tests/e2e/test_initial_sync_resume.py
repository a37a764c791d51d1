"""A full listing lists, prepares and writes its pages on three threads of one step (services/initial.py):
a worker SIGKILLed in the middle of it, after some pages committed, leaves a run the next worker
completes with exactly the provider's events — none lost, none twice; the lister stays a bounded
number of pages ahead of the writer, and a step's budget wastes no request."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import psycopg
from celery import Celery

from tests.e2e.helpers import events, link, run_rows, sync
from tests.e2e.procs import cli, ops_env, workers

PAGES_BEFORE_KILL = 3


def _day(offset: int) -> str:
    return (datetime.now(UTC) + timedelta(days=offset)).date().isoformat()


def _seed_google(emu, cal_id: str) -> None:
    for i in range(120):
        d = _day(1 + i % 90)
        emu.google_insert(cal_id, {"summary": f"E{i}", "start": {"dateTime": f"{d}T{8 + i % 9:02d}:00:00Z"},
                                   "end": {"dateTime": f"{d}T{9 + i % 9:02d}:00:00Z"}})
    for i in range(3):
        d = _day(2 + i)
        emu.google_insert(cal_id, {"summary": f"Series {i}", "start": {"dateTime": f"{d}T07:00:00Z", "timeZone": "UTC"},
                                   "end": {"dateTime": f"{d}T07:30:00Z", "timeZone": "UTC"},
                                   "recurrence": ["RRULE:FREQ=DAILY;COUNT=8"]})


def _seed_outlook(emu, cal_id: str) -> tuple[str, str, str]:
    """60 singles and two daily series; (first series' master id, its cancelled day, its exception id)."""
    path = f"/calendars/{quote(cal_id, safe='')}/events"
    zone = "W. Europe Standard Time"
    for i in range(60):
        d = _day(1 + i % 60)
        emu.outlook("POST", path, {"subject": f"E{i}", "start": {"dateTime": f"{d}T{8 + i % 9:02d}:00:00",
                                                                 "timeZone": zone},
                                   "end": {"dateTime": f"{d}T{9 + i % 9:02d}:00:00", "timeZone": zone}})
    masters = []
    for i in range(2):
        d = _day(3 + i)
        masters.append(emu.outlook("POST", path, {
            "subject": f"Series {i}", "start": {"dateTime": f"{d}T07:00:00", "timeZone": zone},
            "end": {"dateTime": f"{d}T07:30:00", "timeZone": zone},
            "recurrence": {"pattern": {"type": "daily", "interval": 1},
                           "range": {"type": "numbered", "startDate": d, "numberOfOccurrences": 6}}}))
    # The first series loses its third occurrence and has its fifth retitled (an exception): a full
    # round shows the first only by its absence, and the round's pages of 8 split the series' items.
    first = masters[0]["id"]
    occurrences = sorted(emu.outlook("GET", f"/events/{quote(first, safe='')}/instances?startDateTime={_day(0)}"
                                            f"T00:00:00Z&endDateTime={_day(20)}T00:00:00Z")["value"],
                         key=lambda o: o["start"]["dateTime"])
    assert len(occurrences) == 6
    emu.outlook("DELETE", f"/events/{quote(occurrences[2]['id'], safe='')}")
    emu.outlook("PATCH", f"/events/{quote(occurrences[4]['id'], safe='')}", {"subject": "Series 0 (moved)"})
    return first, _day(5), occurrences[4]["id"]


def _wait_until(check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.05)


def _finished(db, calendar_id: int) -> bool:
    rows = run_rows(db, calendar_id)
    return bool(rows) and rows[-1]["finishedAt"] is not None


def _wait_for_pages(db, calendar_id: int, pages: int, timeout: float) -> list[dict]:
    """Poll the calendar's runs until the latest has committed ``pages`` pages (or the timeout passes)."""
    def committed() -> bool:
        rows = run_rows(db, calendar_id)
        return bool(rows) and rows[-1]["pagesFetched"] >= pages

    _wait_until(committed, timeout)
    return run_rows(db, calendar_id)


def _kill_mid_run_then_resume(db, cal, env: dict[str, str]) -> dict:
    with workers(1, env) as procs:
        assert cli("sync", "--user", str(cal.user_id), env=env).returncode == 0
        _wait_for_pages(db, cal.calendar_id, PAGES_BEFORE_KILL, 60)
        procs[0].kill()  # SIGKILL: the step dies between pages, its read-ahead request in flight
        procs[0].wait(10)
    killed = run_rows(db, cal.calendar_id)[-1]
    assert killed["finishedAt"] is None, "the run ended before the kill: nothing was tested"
    assert killed["fullSync"] and killed["pagesFetched"] >= PAGES_BEFORE_KILL
    assert killed["emptyAtStart"]  # a first link: no deletion tracking, and the resumed run keeps that
    assert killed["pageCursor"] is not None  # pages 1..N and the token of N+1 are what was committed
    assert db.execute('SELECT count(*) FROM sync_page WHERE "runId" = %s', (killed["runId"],)).fetchone()[0] == 0
    db.execute('UPDATE sync_run SET "heartbeatAt" = now() - interval \'1 hour\' WHERE "runId" = %s',
               (killed["runId"],))
    with workers(1, env, fresh=False):
        Celery(broker=env["AUTOSYNC_BROKER_URL"]).send_task("autosync.resume_stale", queue="autosync")
        _wait_until(lambda: _finished(db, cal.calendar_id), 90)
    final = run_rows(db, cal.calendar_id)
    assert [r["outcome"] for r in final] == ["ok"], final[-1]["error"]
    assert final[0]["pagesFetched"] > killed["pagesFetched"] and final[0]["emptyAtStart"]
    return killed


def _listings(emu) -> int:
    return int(emu.requests(endpoint="google.events.list")["total"])


def _no_duplicates(db, calendar_id: int) -> None:
    dupes = db.execute('SELECT "extEventId" FROM cal_event WHERE "calendarId" = %s GROUP BY 1 HAVING count(*) > 1',
                       (calendar_id,)).fetchall()
    assert dupes == []


def test_google_initial_sync_killed_mid_pipeline_resumes_with_exactly_the_providers_events(
        db, emu, limits_redis) -> None:
    cal = link(db, emu, "google")
    _seed_google(emu, cal.ext_calendar_id)
    emu.set_latency(200, provider="google", endpoint="google.events.list")  # ~0.2 s a page: a kill lands mid-run
    env = ops_env(AUTOSYNC_GOOGLE_PAGE_SIZE="8", AUTOSYNC_FULL_SYNC_STEP_PAGES="100", AUTOSYNC_RUN_STALE_AFTER="10")
    try:
        _kill_mid_run_then_resume(db, cal, env)
    finally:
        emu.clear_latency()
    provider = {e["id"]: e for e in emu.google_list(cal.ext_calendar_id) if e.get("status") != "cancelled"}
    rows = events(db, cal.calendar_id, live_only=True)
    assert set(rows) == set(provider) and len(provider) == 123
    for ext_id, item in provider.items():
        assert rows[ext_id]["eventName"] == item["summary"]
        assert rows[ext_id]["extEtag"] == item["etag"]  # the content the provider holds now
    _no_duplicates(db, cal.calendar_id)


def test_outlook_initial_sync_killed_mid_pipeline_resumes_with_exactly_the_providers_events(
        db, emu, limits_redis) -> None:
    cal = link(db, emu, "outlook")
    master, cancelled_day, exception = _seed_outlook(emu, cal.ext_calendar_id)
    emu.clear_requests()
    emu.set_latency(200, provider="outlook", endpoint="graph.delta")
    # One series per part: the last page reconciles the two series in two transactions.
    env = ops_env(AUTOSYNC_OUTLOOK_PAGE_SIZE="8", AUTOSYNC_FULL_SYNC_STEP_PAGES="100", AUTOSYNC_RUN_STALE_AFTER="10",
                  AUTOSYNC_FULL_SYNC_SERIES_PER_PART="1")
    try:
        _kill_mid_run_then_resume(db, cal, env)
    finally:
        emu.clear_latency()
    # The emulator's stored items (its admin view): series masters and single events here.
    listed = emu.outlook("GET", f"/calendars/{quote(cal.ext_calendar_id, safe='')}/events")["value"]
    provider = {e["id"]: e for e in listed if not e["deleted"]}
    rows = events(db, cal.calendar_id, live_only=True)
    assert set(rows) == set(provider) and len(provider) == 63  # with the exception
    for ext_id, item in provider.items():
        assert rows[ext_id]["eventName"] == item["props"]["subject"]
        assert rows[ext_id]["extEtag"] == f'W/"{item["change_key"]}"'  # the content the provider holds now
    _no_duplicates(db, cal.calendar_id)
    # The series were reconciled from what the round listed, across the kill: the deleted occurrence is a
    # cancelled instance and an exclusion of its master, the exception is kept, and no series cost a
    # request of its own (no /instances, no GET of a master).
    everything = events(db, cal.calendar_id)
    assert rows[exception]["recurringEventId"] == master and rows[exception]["eventName"] == "Series 0 (moved)"
    cancelled = [r for r in everything.values() if r["recurringEventId"] == master and not r["status"]]
    assert [str(r["originalStartDate"]) for r in cancelled] == [cancelled_day]
    assert [str(d) for d in rows[master]["excludedDates"]] == [cancelled_day]
    assert emu.requests(provider="outlook", endpoint="graph.instances")["total"] == 0
    assert emu.requests(provider="outlook", endpoint="graph.events.get")["total"] == 0


def test_a_full_listing_of_a_calendar_that_holds_rows_still_tracks_what_it_lists(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    _seed_google(emu, cal.ext_calendar_id)
    sync(cal.user_id)
    first = run_rows(db, cal.calendar_id)[-1]
    assert first["outcome"] == "ok" and first["fullSync"] and first["emptyAtStart"]
    # A live row the provider no longer has and will not list, not even as cancelled: only the
    # not-seen query of a full listing finds it.
    db.execute('INSERT INTO cal_event ("calendarId", "createdBy", "extEventId", "eventName", status, "startDate", '
               '"endDate") VALUES (%s, %s, %s, %s, true, current_date + 3, current_date + 3)',
               (cal.calendar_id, cal.user_id, "gone-at-google", "Gone"))
    emu.invalidate_cursors(cal.ext_calendar_id)
    sync(cal.user_id)
    again = run_rows(db, cal.calendar_id)[-1]
    assert again["outcome"] == "ok" and again["fullSync"] and not again["emptyAtStart"]
    rows = events(db, cal.calendar_id)
    assert rows["gone-at-google"]["status"] is False
    assert len(events(db, cal.calendar_id, live_only=True)) == 123



def test_a_pipelined_step_that_fails_after_committing_pages_counts_each_provider_request_once(
        small_pages, db, emu) -> None:
    from autosync.services import adhoc

    cal = link(db, emu, "google")
    _seed_google(emu, cal.ext_calendar_id)
    emu.set_latency(150, provider="google", endpoint="google.events.list")
    try:
        emu.clear_requests()
        request_id = adhoc.enqueue(cal.user_id, None)
        _wait_for_pages(db, cal.calendar_id, 2, 30)
        # Every attempt of the next listing fails: the step fails after committing pages, and its retry
        # lists from the committed cursor.
        emu.add_fault(provider="google", endpoint="google.events.list", kind="status", status=503, count=4)
        assert adhoc.wait(request_id, 60)["done"]
    finally:
        emu.clear_latency()
    run = run_rows(db, cal.calendar_id)[-1]
    assert run["outcome"] == "ok" and len(events(db, cal.calendar_id, live_only=True)) == 123
    assert [f["count"] for f in emu.faults()] == [0]  # the fault was met
    assert run["providerRequests"] == emu.requests(provider="google")["total"]


def test_a_duplicate_delivery_of_a_pipelined_step_never_writes_a_page_twice(small_pages, db, emu) -> None:
    from autosync.services import adhoc
    from autosync.tasks import fetch_page

    cal = link(db, emu, "google")
    _seed_google(emu, cal.ext_calendar_id)
    emu.set_latency(150, provider="google", endpoint="google.events.list")
    try:
        request_id = adhoc.enqueue(cal.user_id, None)
        rows = _wait_for_pages(db, cal.calendar_id, 2, 30)
        # The same step delivered again while the first delivery is still listing and writing pages (as a
        # broker redelivers an unacked message): both list from the run's cursor, one of them writes.
        fetch_page.apply_async(args=(rows[-1]["runId"],), queue="autosync.google")
        assert adhoc.wait(request_id, 60)["done"]
    finally:
        emu.clear_latency()
    run = run_rows(db, cal.calendar_id)[-1]
    assert run["outcome"] == "ok" and len(events(db, cal.calendar_id, live_only=True)) == 123
    assert (run["eventsUpserted"], run["eventsUnchanged"]) == (123, 0)  # no page written twice
    assert run["pagesFetched"] == 16  # 123 events (3 of them series) in pages of 8


def test_the_lister_stays_its_pages_ahead_of_a_writer_that_cannot_write(db, emu, limits_redis) -> None:
    from autosync.services.initial import pages_ahead

    ahead = pages_ahead(8)
    assert ahead == 8  # 5,000 items' worth of pages of 8, at most 8 pages

    cal = link(db, emu, "google")
    _seed_google(emu, cal.ext_calendar_id)
    first = next(e["id"] for e in emu.google_list(cal.ext_calendar_id) if e.get("summary") == "E0")
    env = ops_env(AUTOSYNC_GOOGLE_PAGE_SIZE="8", AUTOSYNC_FULL_SYNC_STEP_PAGES="100")
    emu.clear_requests()
    # Another transaction holds an uncommitted row with the id of page 1's first event: the writer's
    # merge of page 1 waits for it, as it would behind a slow or locked database.
    with psycopg.connect(db.info.dsn) as blocker, workers(1, env):
        blocker.execute('INSERT INTO cal_event ("calendarId", "createdBy", "extEventId", "eventName", status, '
                        '"startDate", "endDate") VALUES (%s, %s, %s, %s, true, current_date, current_date)',
                        (cal.calendar_id, cal.user_id, first, "Held"))
        assert cli("sync", "--user", str(cal.user_id), env=env).returncode == 0
        _wait_until(lambda: _listings(emu) >= 1 + ahead, 30)
        time.sleep(1.5)  # time enough for any further page (the emulator answers in milliseconds)
        assert _listings(emu) == 1 + ahead  # page 1, being written, and the pages read ahead: no more
        assert run_rows(db, cal.calendar_id)[-1]["pagesFetched"] == 0
        blocker.rollback()
        _wait_until(lambda: _finished(db, cal.calendar_id), 60)
    run = run_rows(db, cal.calendar_id)[-1]
    assert run["outcome"] == "ok" and len(events(db, cal.calendar_id, live_only=True)) == 123
    assert run["pagesFetched"] == _listings(emu) == 16
    _no_duplicates(db, cal.calendar_id)


def test_a_step_whose_budget_is_spent_writes_every_page_it_listed(db, emu, limits_redis) -> None:
    cal = link(db, emu, "google")
    _seed_google(emu, cal.ext_calendar_id)
    env = ops_env(AUTOSYNC_GOOGLE_PAGE_SIZE="8", AUTOSYNC_FULL_SYNC_STEP_PAGES="3")
    emu.clear_requests()
    with workers(1, env):
        assert cli("sync", "--user", str(cal.user_id), env=env).returncode == 0
        _wait_until(lambda: _finished(db, cal.calendar_id), 60)
    run = run_rows(db, cal.calendar_id)[-1]
    assert run["outcome"] == "ok" and len(events(db, cal.calendar_id, live_only=True)) == 123
    # 16 pages in steps of 3: each step's lister stopped at its budget and its writer wrote all of them,
    # so no page was listed twice.
    assert run["pagesFetched"] == _listings(emu) == 16
    assert run["providerRequests"] == emu.requests(provider="google")["total"]

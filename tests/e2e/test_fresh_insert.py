"""The import's fresh-insert path (store/events.COPY_FRESH) against the real database: rows a full
listing of an emptied calendar expects to be new go straight into cal_event, and a row that exists
after all sends the page to the merge, with the same result as if it had gone there first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
from psycopg.rows import dict_row

from autosync.model import Event
from autosync.store import events as ev_sql
from tests.e2e.helpers import events, link, run_rows, sync


def _event(n: int, summary: str = "Event") -> Event:
    start = datetime(2026, 12, 10, 9, tzinfo=UTC) + timedelta(days=n)
    return Event(ext_id=f"fresh-{n}", summary=f"{summary} {n}", start=start, end=start + timedelta(hours=1),
                 etag=f'"{n}"', raw={"id": f"fresh-{n}", "summary": f"{summary} {n}"})


def _kill_rows(db: psycopg.Connection, calendar_id: int) -> None:
    """Mark a calendar's rows deleted as the import would (not as an app change to push)."""
    with db.transaction():
        db.execute("SELECT set_config('autosync.origin', 'sync', true)")
        db.execute("UPDATE cal_event SET status = false, \"eventStatus\" = 'cancelled' WHERE \"calendarId\" = %s",
                   (calendar_id,))


def _calendar(db: psycopg.Connection) -> tuple[int, int]:
    user = db.execute("INSERT INTO user_main (email, \"firstName\") VALUES ('fresh@example.com', 'fresh') "
                      'RETURNING "userId"').fetchone()
    assert user is not None
    cal = db.execute('INSERT INTO calendar ("userId", "calendarType", "extCalendarId", status) '
                     "VALUES (%s, 1, 'fresh-cal', true) RETURNING \"calendarId\"", (user[0],)).fetchone()
    assert cal is not None
    return int(cal[0]), int(user[0])


def _upsert(database_url: str, calendar_id: int, user_id: int, evs: list[Event]) -> tuple[ev_sql.Upserted, bool]:
    """upsert(fresh=True) in a new session; also whether that session made the merge's staging table."""
    with psycopg.connect(database_url, row_factory=dict_row, options="-c autosync.origin=sync") as conn:
        result = ev_sql.upsert(conn, calendar_id, user_id, evs, fresh=True)
        staging = conn.execute("SELECT to_regclass('pg_temp.import_rows') IS NOT NULL AS made").fetchone()
        assert staging is not None
        return result, staging["made"]


def test_rows_of_an_empty_calendar_are_copied_in_without_staging(db, database_url) -> None:
    calendar_id, user_id = _calendar(db)
    result, staged = _upsert(database_url, calendar_id, user_id, [_event(n) for n in range(5)])
    assert (result.inserted, result.updated, result.unchanged, staged) == (5, 0, 0, False)
    assert not result.merged_instead
    rows = events(db, calendar_id)
    assert sorted(rows) == [f"fresh-{n}" for n in range(5)]
    row = rows["fresh-3"]
    assert row["eventName"] == "Event 3" and row["status"] is True and row["createdBy"] == user_id
    assert row["syncedAt"] is not None and row["contentHash"] == _event(3).content_hash()
    assert row["providerData"] == {"id": "fresh-3", "summary": "Event 3"}


def test_a_row_that_exists_after_all_sends_the_page_to_the_merge(db, database_url) -> None:
    calendar_id, user_id = _calendar(db)
    _upsert(database_url, calendar_id, user_id, [_event(2, "Old")])
    _kill_rows(db, calendar_id)  # a dead row, as a calendar linked again keeps them
    result, staged = _upsert(database_url, calendar_id, user_id, [_event(n) for n in range(5)])
    # The COPY failed on fresh-2 and wrote nothing; the merge wrote all five, fresh-2 revived.
    assert (result.inserted, result.updated, result.unchanged, staged) == (4, 1, 0, True)
    assert result.merged_instead
    rows = events(db, calendar_id)
    assert len(rows) == 5 and all(r["status"] for r in rows.values())
    assert rows["fresh-2"]["eventName"] == "Event 2"
    assert db.execute('SELECT count(*) FROM cal_event WHERE "calendarId" = %s', (calendar_id,)).fetchone() == (5,)


def test_a_calendar_linked_again_over_its_dead_rows_ends_with_exactly_the_providers_events(
        worker, db, emu) -> None:
    cal = link(db, emu, "google")
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    for n in range(6):
        when = start + timedelta(days=n)
        emu.google_insert(cal.ext_calendar_id, {
            "summary": f"Meeting {n}", "start": {"dateTime": when.isoformat()},
            "end": {"dateTime": (when + timedelta(hours=1)).isoformat()}})
    sync(cal.user_id)
    assert run_rows(db, cal.calendar_id)[-1]["emptyAtStart"]
    # Unlinked and linked again: the rows stay, dead, and the cursor is gone.
    _kill_rows(db, cal.calendar_id)
    emu.invalidate_cursors(cal.ext_calendar_id)
    sync(cal.user_id)
    run = run_rows(db, cal.calendar_id)[-1]
    assert run["outcome"] == "ok" and run["fullSync"] and run["emptyAtStart"]
    rows = events(db, cal.calendar_id)
    assert len(rows) == 6 and all(r["status"] for r in rows.values())
    assert sorted(r["eventName"] for r in rows.values()) == [f"Meeting {n}" for n in range(6)]


def test_a_step_whose_first_page_meets_existing_rows_merges_the_rest_at_once(
        small_pages, db, emu, monkeypatch) -> None:
    cal = link(db, emu, "google")
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    for n in range(30):  # four pages of 8
        when = start + timedelta(hours=7 * n)
        emu.google_insert(cal.ext_calendar_id, {
            "summary": f"Slot {n}", "start": {"dateTime": when.isoformat()},
            "end": {"dateTime": (when + timedelta(minutes=30)).isoformat()}})
    sync(cal.user_id)
    _kill_rows(db, cal.calendar_id)
    emu.invalidate_cursors(cal.ext_calendar_id)
    copies: list[bool] = []
    real = ev_sql._insert_fresh

    def counted(*args, **kwargs):  # the real COPY, counted
        result = real(*args, **kwargs)
        copies.append(result is not None)
        return result

    monkeypatch.setattr(ev_sql, "_insert_fresh", counted)
    sync(cal.user_id)
    run = run_rows(db, cal.calendar_id)[-1]
    assert run["outcome"] == "ok" and run["emptyAtStart"] and run["pagesFetched"] == 4
    # The first page's COPY met the dead rows; the step's three other pages went to the merge at once.
    assert copies == [False]
    rows = events(db, cal.calendar_id)
    assert len(rows) == 30 and all(r["status"] for r in rows.values())

"""Outlook pull sync end to end: Graph delta links, series, exceptions, cancellations, rotation."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import quote

from tests.e2e.helpers import events, link, sync


def _day(offset: int) -> date:
    return (datetime.now(UTC) + timedelta(days=offset)).date()


def _event(subject: str, offset: int, hour: int, tz: str = "W. Europe Standard Time", **extra: object) -> dict:
    d = _day(offset).isoformat()
    return {"subject": subject, "start": {"dateTime": f"{d}T{hour:02d}:00:00", "timeZone": tz},
            "end": {"dateTime": f"{d}T{hour + 1:02d}:00:00", "timeZone": tz}, **extra}


def _create(emu, cal_id: str, body: dict) -> dict:
    return emu.outlook("POST", f"/calendars/{quote(cal_id, safe='')}/events", body)


def _series(emu, cal_id: str, start: date, count: int = 5) -> dict:
    return _create(emu, cal_id, {
        "subject": "Standup",
        "start": {"dateTime": f"{start}T09:00:00", "timeZone": "W. Europe Standard Time"},
        "end": {"dateTime": f"{start}T09:15:00", "timeZone": "W. Europe Standard Time"},
        "recurrence": {"pattern": {"type": "daily", "interval": 1},
                       "range": {"type": "numbered", "startDate": start.isoformat(),
                                 "numberOfOccurrences": count}}})


def test_first_sync_stores_the_delta_link_verbatim_and_imports_everything(worker, db, emu) -> None:
    cal = link(db, emu, "outlook")
    _create(emu, cal.ext_calendar_id, _event("Design review", 2, 9, isOnlineMeeting=True,
                                             onlineMeetingProvider="teamsForBusiness",
                                             attendees=[{"emailAddress": {"address": "bob@contoso.com",
                                                                          "name": "Bob"}, "type": "required"}]))
    _create(emu, cal.ext_calendar_id, {"subject": "Offsite", "isAllDay": True,
                                       "start": {"dateTime": f"{_day(4)}T00:00:00", "timeZone": "UTC"},
                                       "end": {"dateTime": f"{_day(6)}T00:00:00", "timeZone": "UTC"}})
    summary = sync(cal.user_id)
    assert [r["outcome"] for r in summary["runs"]] == ["ok"], summary
    rows = {r["eventName"]: r for r in events(db, cal.calendar_id).values()}
    review = rows["Design review"]
    assert review["startTimeZone"] == "Europe/Berlin" and review["linkAllDay"] is False
    assert review["attendees"][0]["email"] == "bob@contoso.com"
    assert review["conferenceType"] == "teamsForBusiness" and review["conferenceUri"]
    offsite = rows["Offsite"]
    assert offsite["linkAllDay"] and (offsite["startDate"], offsite["endDate"]) == (_day(4), _day(5))
    link_row = db.execute('SELECT "deltaLink" FROM calendar WHERE "calendarId" = %s', (cal.calendar_id,)).fetchone()
    assert link_row is not None and "$deltatoken=" in link_row[0]
    assert "%2B" in link_row[0] and "%C3%A9" in link_row[0]  # characters that need URL care survive
    # Replayed byte for byte, with the Prefer headers re-sent on every request.
    emu.clear_requests()
    sync(cal.user_id)
    log = emu.requests(provider="outlook")["requests"]
    assert len(log) == 1
    assert link_row[0].endswith(log[0]["path"] + "?" + log[0]["raw_query"])
    prefer = log[0]["headers"].get("Prefer", "")
    assert "outlook.timezone" in prefer and "odata.maxpagesize" in prefer and "ImmutableId" in prefer


def test_incremental_changes_and_removed_entries(worker, db, emu) -> None:
    cal = link(db, emu, "outlook")
    a = _create(emu, cal.ext_calendar_id, _event("A", 1, 10))
    b = _create(emu, cal.ext_calendar_id, _event("B", 2, 10))
    sync(cal.user_id)
    emu.outlook("PATCH", f"/events/{quote(a['id'], safe='')}", {"subject": "A renamed"})
    emu.outlook("DELETE", f"/events/{quote(b['id'], safe='')}")
    sync(cal.user_id)
    rows = events(db, cal.calendar_id)
    assert rows[a["id"]]["eventName"] == "A renamed" and rows[a["id"]]["status"]
    assert rows[b["id"]]["status"] is False


def test_series_with_an_exception_and_a_cancelled_occurrence(worker, db, emu) -> None:
    cal = link(db, emu, "outlook")
    start = _day(1)
    master = _series(emu, cal.ext_calendar_id, start)
    sync(cal.user_id)
    rows = events(db, cal.calendar_id)
    assert rows[master["id"]]["recurrence"][0].startswith("RRULE:FREQ=DAILY")
    assert rows[master["id"]]["removeChildInstances"] is True
    assert [r for r in rows.values() if r["recurringEventId"]] == []  # plain occurrences are not stored
    instances = emu.outlook("GET", f"/events/{quote(master['id'], safe='')}/instances?startDateTime="
                            f"{start}T00:00:00Z&endDateTime={start + timedelta(days=10)}T00:00:00Z")
    occ = sorted(instances["value"], key=lambda i: i["start"]["dateTime"])
    moved, cancelled = occ[1], occ[2]
    emu.outlook("PATCH", f"/events/{quote(moved['id'], safe='')}", {"subject": "Standup (moved)"})
    emu.outlook("DELETE", f"/events/{quote(cancelled['id'], safe='')}")
    sync(cal.user_id)
    rows = events(db, cal.calendar_id)
    exc = rows[moved["id"]]
    assert exc["recurringEventId"] == master["id"] and exc["eventName"] == "Standup (moved)" and exc["status"]
    assert exc["originalStartDate"] == start + timedelta(days=1)
    gone = [r for r in rows.values() if r["recurringEventId"] == master["id"] and not r["status"]]
    assert len(gone) == 1 and gone[0]["originalStartDate"] == start + timedelta(days=2)
    assert gone[0]["originalStartTime"] == time(8, 0) or gone[0]["originalStartTime"] == time(7, 0)
    assert start + timedelta(days=2) in (rows[master["id"]]["excludedDates"] or [])
    assert rows[master["id"]]["status"]


def test_unchanged_calendar_costs_exactly_one_request(worker, db, emu) -> None:
    cal = link(db, emu, "outlook")
    _create(emu, cal.ext_calendar_id, _event("A", 1, 10))
    _series(emu, cal.ext_calendar_id, _day(2))
    sync(cal.user_id)
    emu.clear_requests()
    summary = sync(cal.user_id)
    assert summary["runs"][0]["providerRequests"] == 1
    assert emu.requests(provider="outlook")["total"] == 1


def test_window_rolls_forward_with_a_new_round(worker, db, emu) -> None:
    cal = link(db, emu, "outlook")
    _create(emu, cal.ext_calendar_id, _event("A", 1, 10))
    sync(cal.user_id)
    old = db.execute('SELECT "syncWindowEnd", "deltaLink" FROM calendar WHERE "calendarId" = %s',
                     (cal.calendar_id,)).fetchone()
    # Pretend the stored window was opened 30 days ago: it must roll (new initial request).
    db.execute('UPDATE calendar SET "syncWindowStart" = "syncWindowStart" - interval \'30 days\', '
               '"syncWindowEnd" = "syncWindowEnd" - interval \'30 days\' WHERE "calendarId" = %s',
               (cal.calendar_id,))
    emu.clear_requests()
    summary = sync(cal.user_id)
    assert summary["runs"][0]["fullSync"] is True and summary["runs"][0]["outcome"] == "ok"
    first = emu.requests(provider="outlook")["requests"][0]
    assert "startDateTime" in first["query"]
    new = db.execute('SELECT "syncWindowEnd", "deltaLink" FROM calendar WHERE "calendarId" = %s',
                     (cal.calendar_id,)).fetchone()
    assert new[0] >= old[0] and new[1] != old[1]
    assert events(db, cal.calendar_id, live_only=True)  # nothing lost by the roll


def test_sync_state_not_found_triggers_a_full_resync(worker, db, emu) -> None:
    cal = link(db, emu, "outlook")
    keep = _create(emu, cal.ext_calendar_id, _event("Keep", 1, 10))
    sync(cal.user_id)
    emu.invalidate_cursors(cal.ext_calendar_id)
    summary = sync(cal.user_id)
    assert summary["runs"][0]["fullSync"] is True and summary["runs"][0]["outcome"] == "ok"
    assert events(db, cal.calendar_id)[keep["id"]]["status"]


def test_refresh_token_rotation_under_concurrent_chains(worker, db, emu) -> None:
    cal = link(db, emu, "outlook")
    # A second calendar of the same mailbox, same user: both chains need a token at once.
    second = emu.create_calendar(cal.account_id, name="Second")
    db.execute('INSERT INTO calendar ("userId", "calendarType", "extCalendarId", "socialAccountId", '
               '"refreshToken", status) VALUES (%s, 2, %s, %s, %s, true)',
               (cal.user_id, second, cal.account_id, cal.refresh_token))
    results: list[dict] = []
    threads = [threading.Thread(target=lambda: results.append(sync(cal.user_id))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert emu.requests(provider="outlook", endpoint="outlook.token")["total"] == 1
    rows = db.execute('SELECT DISTINCT "refreshToken", token FROM calendar WHERE "userId" = %s',
                      (cal.user_id,)).fetchall()
    assert len(rows) == 1 and rows[0][0] != cal.refresh_token  # the rotated token saved on both rows
    # The rotated token keeps working: expire access tokens, next sync refreshes with the new one.
    db.execute('UPDATE calendar SET "accessTokenExpirationDate" = now() - interval \'1 hour\'')
    summary = sync(cal.user_id)
    assert all(r["outcome"] == "ok" for r in summary["runs"])


def test_retry_after_in_all_three_forms_is_honoured(worker, db, emu) -> None:
    cal = link(db, emu, "outlook")
    _create(emu, cal.ext_calendar_id, _event("A", 1, 10))
    sync(cal.user_id)
    soon = (datetime.now(UTC) + timedelta(seconds=1)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    for value in ("1", "0.5", soon):
        emu.clear_requests()
        emu.add_fault(provider="outlook", endpoint="graph.delta", count=1, status=429,
                      body={"error": {"code": "ApplicationThrottled", "message": "over limit"}},
                      headers={"Retry-After": value})
        summary = sync(cal.user_id)
        assert summary["runs"][0]["outcome"] == "ok", (value, summary)
        statuses = [r["status"] for r in emu.requests(provider="outlook")["requests"]]
        assert statuses == [429, 200], (value, statuses)

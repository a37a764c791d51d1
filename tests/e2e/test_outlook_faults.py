"""Outlook failure paths end to end: AADSTS invalid_grant, transient token errors, malformed items, DST."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from urllib.parse import quote

from tests.e2e.helpers import events, link, sync

TOKEN = "outlook.token"


def _create(emu, cal_id: str, body: dict) -> dict:
    return emu.outlook("POST", f"/calendars/{quote(cal_id, safe='')}/events", body)


def _event(subject: str, offset: int, hour: int = 9) -> dict:
    d = (datetime.now(UTC) + timedelta(days=offset)).date().isoformat()
    return {"subject": subject, "start": {"dateTime": f"{d}T{hour:02d}:00:00", "timeZone": "UTC"},
            "end": {"dateTime": f"{d}T{hour + 1:02d}:00:00", "timeZone": "UTC"}}


def test_aadsts_invalid_grant_puts_the_mailbox_in_needs_reauth_without_retrying(worker, db, emu) -> None:
    cal = link(db, emu, "outlook")
    emu.revoke(cal.account_id)
    summary = sync(cal.user_id)
    assert [r["outcome"] for r in summary["runs"]] == ["needs_reauth"]
    row = db.execute('SELECT "needsReauth", "reauthReason" FROM calendar').fetchone()
    assert row[0] is True and "invalid_grant" in row[1]
    assert emu.requests(provider="outlook", endpoint=TOKEN)["total"] == 1
    assert db.execute("SELECT kind FROM notification").fetchall() == [("needs_reauth",)]


def test_temporarily_unavailable_token_endpoint_is_transient(worker, db, emu) -> None:
    cal = link(db, emu, "outlook")
    _create(emu, cal.ext_calendar_id, _event("A", 1))
    emu.add_fault(provider="outlook", endpoint=TOKEN, count=1, status=400,
                  body={"error": "temporarily_unavailable", "error_description": "AADSTS90006: try again",
                        "error_codes": [90006]})
    summary = sync(cal.user_id)
    assert [r["outcome"] for r in summary["runs"]] == ["ok"]
    assert [r["status"] for r in emu.requests(provider="outlook", endpoint=TOKEN)["requests"]] == [400, 200]
    assert db.execute('SELECT "needsReauth" FROM calendar').fetchone() == (False,)


def test_a_malformed_item_is_skipped_and_recorded_while_the_rest_syncs(worker, db, emu) -> None:
    cal = link(db, emu, "outlook")
    _create(emu, cal.ext_calendar_id, _event("First", 1))
    sync(cal.user_id)
    link_row = db.execute('SELECT "deltaLink" FROM calendar').fetchone()[0]
    good = {**_event("Good", 2), "id": "AAMkGOOD=", "type": "singleInstance", "isAllDay": False}
    bad = {**_event("Bad", 3), "id": "AAMkBAD=", "type": "singleInstance", "isAllDay": False,
           "start": {"dateTime": "not-a-time", "timeZone": "UTC"}}
    # The next delta page carries one good and one malformed item (served as the provider sent it).
    emu.add_fault(provider="outlook", endpoint="graph.delta", count=1, status=200,
                  body={"value": [good, bad], "@odata.deltaLink": link_row})
    summary = sync(cal.user_id)
    run = summary["runs"][0]
    assert run["outcome"] == "ok" and run["eventsSkipped"] == 1 and run["eventsUpserted"] == 1
    assert "AAMkGOOD=" in events(db, cal.calendar_id) and "AAMkBAD=" not in events(db, cal.calendar_id)
    skip = db.execute('SELECT "extEventId", reason FROM sync_skip').fetchone()
    assert skip[0] == "AAMkBAD=" and skip[1]
    assert db.execute('SELECT "deltaLink" FROM calendar').fetchone()[0] == link_row


def _next_transition(zone: str) -> datetime:
    """The first day, 3 to 300 days ahead, on which the zone's UTC offset changes."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(zone)
    day = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) + timedelta(days=3)
    for _ in range(300):
        if (day + timedelta(days=1)).astimezone(tz).utcoffset() != day.astimezone(tz).utcoffset():
            return day + timedelta(days=1)
        day += timedelta(days=1)
    raise AssertionError("no DST change within 300 days")


def test_events_either_side_of_a_dst_change_keep_their_wall_clock(worker, db, emu) -> None:
    from zoneinfo import ZoneInfo

    cal = link(db, emu, "outlook")
    change = _next_transition("Europe/Berlin")
    days = {"Before": (change - timedelta(days=3)).date(), "After": (change + timedelta(days=3)).date()}
    for name, day in days.items():
        _create(emu, cal.ext_calendar_id, {
            "subject": name, "start": {"dateTime": f"{day}T09:00:00", "timeZone": "W. Europe Standard Time"},
            "end": {"dateTime": f"{day}T10:00:00", "timeZone": "W. Europe Standard Time"}})
    sync(cal.user_id)
    rows = {r["eventName"]: r for r in events(db, cal.calendar_id).values()}
    berlin = ZoneInfo("Europe/Berlin")
    for name, day in days.items():
        expected = datetime.combine(day, time(9), tzinfo=berlin).astimezone(UTC).time()
        assert rows[name]["startTime"] == expected and rows[name]["startTimeZone"] == "Europe/Berlin"
    assert rows["Before"]["startTime"] != rows["After"]["startTime"]  # the UTC time moved with DST


def test_a_token_refused_while_checking_a_series_is_refreshed_once(worker, db, emu) -> None:
    cal = link(db, emu, "outlook")
    sync(cal.user_id)
    start = (datetime.now(UTC) + timedelta(days=2)).date()
    _create(emu, cal.ext_calendar_id, {
        "subject": "Series", "start": {"dateTime": f"{start}T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": f"{start}T09:30:00", "timeZone": "UTC"},
        "recurrence": {"pattern": {"type": "daily", "interval": 1},
                       "range": {"type": "numbered", "startDate": start.isoformat(), "numberOfOccurrences": 3}}})
    emu.add_fault(provider="outlook", endpoint="graph.instances", count=1, status=401,
                  body={"error": {"code": "InvalidAuthenticationToken",
                                  "message": "Access token has expired or is not yet valid."}})
    emu.clear_requests()
    summary = sync(cal.user_id)
    assert summary["runs"][0]["outcome"] == "ok"
    assert emu.requests(provider="outlook", endpoint=TOKEN)["total"] == 1
    statuses = [r["status"] for r in emu.requests(provider="outlook", endpoint="graph.instances")["requests"]]
    assert statuses == [401, 200]
    assert any(r["recurrence"] for r in events(db, cal.calendar_id).values())


def test_a_token_refused_while_a_full_round_fetches_an_unlisted_master_is_refreshed_once(worker, db, emu) -> None:
    # A full round whose pages list no series master: its last page fetches the master (its series
    # reconciled from what the round listed, no /instances); the token is refused there once.
    cal = link(db, emu, "outlook")
    sync(cal.user_id)
    start = (datetime.now(UTC) + timedelta(days=2)).date()
    master = _create(emu, cal.ext_calendar_id, {
        "subject": "Series", "start": {"dateTime": f"{start}T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": f"{start}T09:30:00", "timeZone": "UTC"},
        "recurrence": {"pattern": {"type": "daily", "interval": 1},
                       "range": {"type": "numbered", "startDate": start.isoformat(), "numberOfOccurrences": 3}}})
    emu.outlook("POST", "/config", {"delta_masters": "none"})
    emu.invalidate_cursors(cal.ext_calendar_id)
    emu.add_fault(provider="outlook", endpoint="graph.events.get", count=1, status=401,
                  body={"error": {"code": "InvalidAuthenticationToken",
                                  "message": "Access token has expired or is not yet valid."}})
    emu.clear_requests()
    [run] = sync(cal.user_id)["runs"]
    assert run["outcome"] == "ok" and run["fullSync"], run
    assert emu.requests(provider="outlook", endpoint=TOKEN)["total"] == 1
    statuses = [r["status"] for r in emu.requests(provider="outlook", endpoint="graph.events.get")["requests"]]
    assert statuses == [401, 200]
    assert emu.requests(provider="outlook", endpoint="graph.instances")["total"] == 0
    row = events(db, cal.calendar_id)[master["id"]]
    assert row["status"] and row["recurrence"]

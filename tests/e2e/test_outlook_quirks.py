"""Outlook provider quirks end to end (issue 19): each test drives the real worker against the emulator
rendering what Graph really does, where the earlier emulator hid it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest

from tests.e2e.helpers import Linked, events, link, run_rows, sync
from tests.e2e.test_push_notifications import _settle, _wait_runs, hooks  # noqa: F401  (hooks: a fixture)

DAY = timedelta(days=1)
# Zones without daylight saving, so the offsets hold whatever the date: UTC+2, UTC+10 and UTC-7.
ZONES = {"utc+2": "South Africa Standard Time", "utc+10": "E. Australia Standard Time",
         "utc-7": "US Mountain Standard Time"}


def _q(value: str) -> str:
    return quote(value, safe="")


def _today() -> date:
    return datetime.now(UTC).date()


def _create(emu: Any, cal_id: str, body: dict[str, Any]) -> dict[str, Any]:
    created: dict[str, Any] = emu.outlook("POST", f"/calendars/{_q(cal_id)}/events", body)
    return created


def _instances(emu: Any, master_id: str, first: date, days: int = 40) -> list[dict[str, Any]]:
    found = emu.outlook("GET", f"/events/{_q(master_id)}/instances?startDateTime={first - 2 * DAY}T00:00:00Z"
                               f"&endDateTime={first + days * DAY}T00:00:00Z")["value"]
    return sorted(found, key=lambda i: i["start"]["dateTime"])


def all_day_weekly(subject: str, first: date, zone: str, count: int = 4, **extra: Any) -> dict[str, Any]:
    """An all-day weekly series made in ``zone`` (its recurrence zone defaults to the start's zone)."""
    return {"subject": subject, "isAllDay": True,
            "start": {"dateTime": f"{first}T00:00:00", "timeZone": zone},
            "end": {"dateTime": f"{first + DAY}T00:00:00", "timeZone": zone},
            "recurrence": {"pattern": {"type": "weekly", "interval": 1,
                                       "daysOfWeek": [first.strftime("%A").lower()]},
                           "range": {"type": "numbered", "startDate": first.isoformat(),
                                     "numberOfOccurrences": count}}, **extra}


def _cancelled(db: Any, cal: Linked, master_id: str) -> list[date]:
    rows = events(db, cal.calendar_id)
    return sorted(r["originalStartDate"] for r in rows.values()
                  if r["recurringEventId"] == master_id and not r["status"])


def _ok(cal: Linked) -> dict[str, Any]:
    """Sync the user's calendars; the run of ``cal``, which must have ended well."""
    [run] = [r for r in sync(cal.user_id)["runs"] if r["calendarId"] == cal.calendar_id]
    assert run["outcome"] == "ok", run
    return run


# --- 1. all-day series made east and west of UTC ----------------------------------------------------


@pytest.mark.parametrize("where", sorted(ZONES))
@pytest.mark.parametrize("copy", ["organizer", "invitee"])
def test_all_day_weekly_series_keeps_every_occurrence_wherever_it_was_made(worker, db, emu, where: str,
                                                                           copy: str) -> None:
    cal = link(db, emu, "outlook")
    first = _today() + 2 * DAY
    # An invitee's copy has no recurrenceTimeZone (microsoft-graph-docs issue 7163): the day must then
    # be read from originalStart alone.
    extra = {} if copy == "organizer" else {
        "organizer": {"emailAddress": {"name": "Bob", "address": "bob@contoso.com"}}}
    master = _create(emu, cal.ext_calendar_id, all_day_weekly("Gym", first, ZONES[where], **extra))
    _ok(cal)
    rows = events(db, cal.calendar_id)
    assert rows[master["id"]]["status"] and rows[master["id"]]["linkAllDay"]
    assert _cancelled(db, cal, master["id"]) == []
    assert not rows[master["id"]]["excludedDates"]
    # One occurrence moved a day later, another deleted: exactly those slots change.
    occ = _instances(emu, master["id"], first)
    assert len(occ) == 4
    moved, gone = occ[1], occ[2]
    emu.outlook("PATCH", f"/events/{_q(moved['id'])}", {
        "subject": "Gym (moved)", "start": {"dateTime": f"{first + 8 * DAY}T00:00:00", "timeZone": "UTC"},
        "end": {"dateTime": f"{first + 9 * DAY}T00:00:00", "timeZone": "UTC"}})
    emu.outlook("DELETE", f"/events/{_q(gone['id'])}")
    _ok(cal)
    rows = events(db, cal.calendar_id)
    exc = rows[moved["id"]]
    assert exc["status"] and exc["eventName"] == "Gym (moved)"
    assert (exc["originalStartDate"], exc["startDate"]) == (first + 7 * DAY, first + 8 * DAY)
    assert _cancelled(db, cal, master["id"]) == [first + 14 * DAY]
    assert rows[master["id"]]["status"] and rows[master["id"]]["excludedDates"] == [first + 14 * DAY]


# --- 2. rounds that list no series master ------------------------------------------------------------


def _config(emu: Any, **values: Any) -> None:
    emu.outlook("POST", "/config", values)


def _daily_from(first: date) -> dict[str, Any]:
    """A daily 09:00 Berlin series without end: about 400 occurrences in the window, so 4+ delta pages."""
    return {"subject": "Standup", "start": {"dateTime": f"{first}T09:00:00", "timeZone": "W. Europe Standard Time"},
            "end": {"dateTime": f"{first}T09:15:00", "timeZone": "W. Europe Standard Time"},
            "recurrence": {"pattern": {"type": "daily", "interval": 1},
                           "range": {"type": "noEnd", "startDate": first.isoformat()}}}


def _count(emu: Any, endpoint: str) -> int:
    """Requests to an endpoint, not counting the further pages of one listing ($skip)."""
    logged = emu.requests(provider="outlook", endpoint=endpoint)["requests"]
    return len([r for r in logged if "$skip" not in r["raw_query"]])


@pytest.mark.parametrize("mode", ["started_in_window", "none"])
def test_a_full_round_that_lists_no_master_still_yields_the_series_once_per_round(worker, db, emu,
                                                                                  mode: str) -> None:
    cal = link(db, emu, "outlook")
    _config(emu, delta_masters=mode)
    old = _create(emu, cal.ext_calendar_id, _daily_from(_today() - 40 * DAY))  # began before the window
    single = _create(emu, cal.ext_calendar_id, {"subject": "Lunch", "start": {
        "dateTime": f"{_today() + DAY}T12:00:00", "timeZone": "UTC"}, "end": {
        "dateTime": f"{_today() + DAY}T13:00:00", "timeZone": "UTC"}})
    emu.clear_requests()
    run = _ok(cal)
    assert run["fullSync"] and run["pagesFetched"] >= 4, run
    rows = events(db, cal.calendar_id)
    assert rows[old["id"]]["status"] and rows[old["id"]]["recurrence"][0].startswith("RRULE:FREQ=DAILY")
    assert rows[single["id"]]["status"]
    # Followed once in the round, not once per page its ~400 occurrences spread over.
    assert (_count(emu, "graph.events.get"), _count(emu, "graph.instances")) == (1, 0)
    # A later full round (the cursor is gone) keeps it too, and so does an unchanged incremental one.
    emu.invalidate_cursors(cal.ext_calendar_id)
    assert _ok(cal)["fullSync"]
    assert events(db, cal.calendar_id)[old["id"]]["status"]
    emu.clear_requests()
    assert _ok(cal)["providerRequests"] == 1
    assert events(db, cal.calendar_id)[old["id"]]["status"]


def test_a_series_synced_with_its_master_survives_full_rounds_that_stop_listing_it(worker, db, emu) -> None:
    cal = link(db, emu, "outlook")
    master = _create(emu, cal.ext_calendar_id, _daily_from(_today() + DAY))
    _ok(cal)
    assert events(db, cal.calendar_id)[master["id"]]["status"]
    _config(emu, delta_masters="none")
    emu.invalidate_cursors(cal.ext_calendar_id)
    run = _ok(cal)
    assert run["fullSync"] and run["eventsDeleted"] == 0, run
    assert events(db, cal.calendar_id)[master["id"]]["status"]


@pytest.mark.parametrize("mode", ["all", "none"])
def test_a_deleted_series_leaves_in_one_sync_whether_or_not_rounds_list_its_master(worker, db, emu,
                                                                                 mode: str) -> None:
    cal = link(db, emu, "outlook")
    _config(emu, delta_masters=mode)
    master = _create(emu, cal.ext_calendar_id, _daily_from(_today() + DAY))
    other = _create(emu, cal.ext_calendar_id, _daily_from(_today() + 2 * DAY))
    _ok(cal)
    emu.outlook("DELETE", f"/events/{_q(master['id'])}")
    emu.clear_requests()
    run = _ok(cal)
    rows = events(db, cal.calendar_id)
    assert not rows[master["id"]]["status"] and rows[other["id"]]["status"]
    # Hundreds of its occurrences come back @removed; ids that were never ours cost no request: one
    # listing of the calendar's live masters settles them (and the master's own @removed, one GET).
    pages = emu.requests(provider="outlook", endpoint="graph.delta")["total"]
    assert _count(emu, "graph.events.get") == (1 if mode == "all" else 0)
    assert _count(emu, "graph.events.list") == 1
    assert run["providerRequests"] == pages + 1 + (1 if mode == "all" else 0), (pages, run)


# --- 3. a deleted occurrence that no delta round shows -----------------------------------------------

def _series_synced(db: Any, emu: Any, **config: Any) -> tuple[Linked, dict[str, Any], list[dict[str, Any]]]:
    cal = link(db, emu, "outlook")
    _config(emu, **config)
    master = _create(emu, cal.ext_calendar_id, {**_timed("Standup", 1, 8), "recurrence": {
        "pattern": {"type": "daily", "interval": 1},
        "range": {"type": "numbered", "startDate": (_today() + DAY).isoformat(), "numberOfOccurrences": 6}}})
    _ok(cal)
    return cal, master, _instances(emu, master["id"], _today() + DAY)


def test_the_emulator_shows_a_silently_deleted_occurrence_only_in_cancelled_occurrences(worker, db, emu) -> None:
    cal, master, occ = _series_synced(db, emu, silent_occurrence_deletes=True)
    before = emu.outlook("GET", f"/events/{_q(master['id'])}")["changeKey"]
    emu.outlook("DELETE", f"/events/{_q(occ[2]['id'])}")
    emu.clear_requests()
    run = _ok(cal)  # polled: the delta round is empty, and it costs one request as before
    assert (run["providerRequests"], run["eventsDeleted"]) == (1, 0), run
    assert emu.outlook("GET", f"/events/{_q(master['id'])}")["changeKey"] != before
    day = (_today() + 3 * DAY).isoformat()
    assert _selected_cancelled(emu, cal, master["id"]) == [f"OID.{master['id']}.{day}"]


def _selected_cancelled(emu: Any, cal: Linked, master_id: str) -> list[str]:
    """cancelledOccurrences as a client gets it: through the Graph API with $select (none without)."""
    import requests

    from autosync.settings import get_settings

    token = _access_token(emu, cal)
    url = f"{get_settings().graph_api_url}/me/events/{_q(master_id)}"
    plain = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5).json()
    assert "cancelledOccurrences" not in plain
    picked = requests.get(url, params={"$select": "subject,cancelledOccurrences"},
                          headers={"Authorization": f"Bearer {token}"}, timeout=5).json()
    return list(picked["cancelledOccurrences"])


def _access_token(emu: Any, cal: Linked) -> str:
    import requests

    from autosync.settings import get_settings

    settings = get_settings()
    grant = requests.post(settings.outlook_token_url, data={
        "grant_type": "refresh_token", "refresh_token": emu.new_refresh_token(cal.account_id),
        "client_id": settings.outlook_client_id, "client_secret": settings.outlook_client_secret.reveal(),
        "scope": settings.outlook_scope}, timeout=5).json()
    return str(grant["access_token"])


@pytest.mark.usefixtures("hooks")
def test_a_silently_deleted_occurrence_is_noticed_by_the_sync_its_notification_starts(db, emu) -> None:
    cal, master, occ = _series_synced(db, emu, silent_occurrence_deletes=True)
    _settle(emu, db)
    runs_before = len(run_rows(db, cal.calendar_id))
    emu.outlook("DELETE", f"/events/{_q(occ[2]['id'])}")  # Graph notifies the master as updated
    _wait_runs(db, cal.calendar_id, runs_before + 1)
    _settle(emu, db)
    assert _cancelled(db, cal, master["id"]) == [_today() + 3 * DAY]
    # Its cost: the (empty) delta round, the master with cancelledOccurrences, one page of /instances.
    assert sum(r["providerRequests"] for r in run_rows(db, cal.calendar_id)[runs_before:]) == 3
    rows = events(db, cal.calendar_id)
    assert rows[master["id"]]["status"] and rows[master["id"]]["excludedDates"] == [_today() + 3 * DAY]
    assert db.execute("SELECT count(*) FROM series_hint").fetchone()[0] == 0  # dealt with
    # An ordinary change is named by the delta itself: no extra requests for the series.
    emu.clear_requests()
    emu.outlook("PATCH", f"/events/{_q(master['id'])}", {"subject": "Daily standup"})
    _wait_runs(db, cal.calendar_id, runs_before + 2)
    _settle(emu, db)
    assert events(db, cal.calendar_id)[master["id"]]["eventName"] == "Daily standup"
    gets = [r for r in emu.requests(provider="outlook")["requests"] if r["endpoint"] == "graph.events.get"]
    assert gets == []


def test_renaming_a_series_in_the_app_keeps_its_outlook_exceptions_and_cancellations(worker, db, emu) -> None:
    from tests.e2e.test_pushback_google import app_update

    cal, master, occ = _series_synced(db, emu, silent_occurrence_deletes=True)
    emu.outlook("DELETE", f"/events/{_q(occ[2]['id'])}")  # polled: not seen yet
    # Then only an exception changes: its master is fetched by id, with its cancelledOccurrences,
    # and the deletion is found on the way.
    emu.outlook("PATCH", f"/events/{_q(occ[4]['id'])}", {"subject": "Standup (in room 2)"})
    _ok(cal)
    assert _cancelled(db, cal, master["id"]) == [_today() + 3 * DAY]
    app_update(db, events(db, cal.calendar_id)[master["id"]]["eventId"], eventName="Daily standup")
    run = _ok(cal)
    assert (run["pushUpdated"], run["pushFailed"]) == (1, 0), run
    # A PATCH that re-sent the recurrence would have made Outlook drop both (as Outlook does).
    now = {i["id"]: i for i in _instances(emu, master["id"], _today() + DAY)}
    assert occ[2]["id"] not in now and now[occ[4]["id"]]["subject"] == "Standup (in room 2)"
    assert emu.outlook("GET", f"/events/{_q(master['id'])}")["subject"] == "Daily standup"


# --- 4. a calendar shared from another mailbox -------------------------------------------------------


def _shared_calendar(db: Any, emu: Any) -> Linked:
    """Alice's link to Bob's calendar, shared with her (her own mailbox's token, Bob's calendar id)."""
    owner = emu.create_account("outlook", "bob@contoso.com")
    me = link(db, emu, "outlook", "alice@example.com")
    emu.outlook("POST", f"/calendars/{_q(owner['calendar_id'])}/share", {"account_id": me.account_id})
    found = db.execute(
        'INSERT INTO calendar ("userId", "calendarType", "extCalendarId", "socialAccountId", "refreshToken", '
        'status) VALUES (%s, 2, %s, %s, %s, true) RETURNING "calendarId"',
        (me.user_id, owner["calendar_id"], me.account_id, me.refresh_token)).fetchone()
    return Linked(me.user_id, found[0], me.account_id, owner["calendar_id"], me.refresh_token)


def _stored(emu: Any, cal: Linked) -> dict[str, dict[str, Any]]:
    """Live items of the calendar in the emulator (masters, singles, exceptions) by id."""
    items = emu.outlook("GET", f"/calendars/{_q(cal.ext_calendar_id)}/events")["value"]
    return {e["id"]: e for e in items if not e["deleted"]}


def _timed(subject: str, offset: int, hour: int) -> dict[str, Any]:
    d = _today() + offset * DAY
    return {"subject": subject, "start": {"dateTime": f"{d}T{hour:02d}:00:00", "timeZone": "UTC"},
            "end": {"dateTime": f"{d}T{hour + 1:02d}:00:00", "timeZone": "UTC"}}


def test_shared_calendar_events_update_and_delete_in_place_without_duplicates(worker, db, emu) -> None:
    from tests.e2e.test_pushback_google import app_update

    cal = _shared_calendar(db, emu)
    keep = _create(emu, cal.ext_calendar_id, _timed("Review", 2, 9))
    drop = _create(emu, cal.ext_calendar_id, _timed("Retro", 3, 9))
    _ok(cal)
    rows = events(db, cal.calendar_id)
    assert rows[keep["id"]]["status"] and rows[drop["id"]]["status"]
    app_update(db, rows[keep["id"]]["eventId"], eventName="Review (moved to Friday)")
    app_update(db, rows[drop["id"]]["eventId"], status=False)
    run = _ok(cal)
    assert (run["pushUpdated"], run["pushDeleted"], run["pushFailed"]) == (1, 1, 0), run
    stored = _stored(emu, cal)
    assert list(stored) == [keep["id"]], "a PATCH or DELETE missed the event (duplicate or leftover)"
    assert stored[keep["id"]]["props"]["subject"] == "Review (moved to Friday)"
    writes = [r["path"] for r in emu.requests(provider="outlook")["requests"] if r["method"] in ("PATCH", "DELETE")]
    assert writes and all(f"/calendars/{_q(cal.ext_calendar_id)}/events/" in p for p in writes), writes
    rows = events(db, cal.calendar_id)
    assert [r["extEventId"] for r in rows.values() if r["status"]] == [keep["id"]]


def test_a_shared_series_is_not_taken_as_deleted_when_only_an_exception_changes(worker, db, emu) -> None:
    cal = _shared_calendar(db, emu)
    master = _create(emu, cal.ext_calendar_id, {**_timed("Standup", 1, 8), "recurrence": {
        "pattern": {"type": "daily", "interval": 1},
        "range": {"type": "numbered", "startDate": (_today() + DAY).isoformat(), "numberOfOccurrences": 5}}})
    _ok(cal)
    occ = _instances(emu, master["id"], _today() + DAY)
    emu.outlook("PATCH", f"/events/{_q(occ[1]['id'])}", {"subject": "Standup (late)"})
    run = _ok(cal)  # the page has the exception only: its master is fetched through the calendar
    assert run["eventsDeleted"] == 0, run
    rows = events(db, cal.calendar_id)
    assert rows[master["id"]]["status"]
    assert rows[occ[1]["id"]]["status"] and rows[occ[1]["id"]]["eventName"] == "Standup (late)"


# --- the bearer token goes only to the configured Graph URL (issue 20, point 8) ----------------------


@pytest.fixture()
def elsewhere() -> Any:
    """An HTTP server that is not Graph: records what reaches it (it must stay empty)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append({"path": self.path, "authorization": self.headers.get("Authorization")})
            body = b'{"value": [], "@odata.deltaLink": "x"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.seen = seen  # type: ignore[attr-defined]
    yield server
    server.shutdown()
    server.server_close()


def _graph_url() -> str:
    from autosync.settings import get_settings

    return get_settings().graph_api_url


@pytest.mark.parametrize("kind", ["other host", "lookalike prefix"])
def test_a_stored_delta_link_outside_the_graph_url_is_refused_unsent_and_resynced(worker, db, emu, elsewhere,
                                                                                   kind: str) -> None:
    cal = link(db, emu, "outlook")
    keep = _create(emu, cal.ext_calendar_id, _timed("Keep", 1, 10))
    _ok(cal)
    host, port = elsewhere.server_address[:2]
    foreign = (f"http://{host}:{port}/graph/v1.0/me/calendarView/delta?$deltatoken=stolen" if kind == "other host"
               else _graph_url() + ".evil.example/me/calendarView/delta?$deltatoken=stolen")
    db.execute('UPDATE calendar SET "deltaLink" = %s WHERE "calendarId" = %s', (foreign, cal.calendar_id))
    emu.clear_requests()
    [run] = sync(cal.user_id)["runs"]
    assert run["outcome"] == "failed" and "AUTOSYNC_GRAPH_API_URL" in run["error"], run
    assert "stolen" not in run["error"]
    assert elsewhere.seen == [] and emu.requests(provider="outlook", endpoint="graph.delta")["total"] == 0
    stored = db.execute('SELECT "deltaLink", "lastError" FROM calendar WHERE "calendarId" = %s',
                        (cal.calendar_id,)).fetchone()
    assert stored[0] is None and "AUTOSYNC_GRAPH_API_URL" in stored[1]
    # The next run lists the calendar in full from the configured URL; nothing was lost meanwhile.
    again = _ok(cal)
    assert again["fullSync"] and events(db, cal.calendar_id)[keep["id"]]["status"]
    assert elsewhere.seen == []

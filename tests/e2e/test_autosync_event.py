"""The app's AutoSync event and the `autosync handle` / `autosync sync` commands, end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

from tests.e2e.helpers import Linked, events, link, run_rows

OK = {"Status": "OK", "Statuscode": "SU001", "Message": "Data sync successfully"}


def _when(offset: int, hour: int) -> tuple[str, str]:
    d = (datetime.now(UTC) + timedelta(days=offset)).date().isoformat()
    return f"{d}T{hour:02d}:00:00", f"{d}T{hour + 1:02d}:00:00"


def _google_event(emu: Any, cal: Linked, summary: str, offset: int = 1) -> str:
    start, end = _when(offset, 9)
    return str(emu.google_insert(cal.ext_calendar_id, {
        "summary": summary, "start": {"dateTime": start, "timeZone": "Europe/Berlin"},
        "end": {"dateTime": end, "timeZone": "Europe/Berlin"}})["id"])


def _outlook_calendar(db: psycopg.Connection, emu: Any, user_id: int) -> tuple[int, str]:
    """An Outlook calendar linked to an existing user; returns (calendarId, ext calendar id)."""
    acct = emu.create_account("outlook", f"user{user_id}@contoso.com")
    row = db.execute(
        'INSERT INTO calendar ("userId", "calendarType", "extCalendarId", "socialAccountId", "refreshToken", status) '
        'VALUES (%s, 2, %s, %s, %s, true) RETURNING "calendarId"',
        (user_id, acct["calendar_id"], acct["account_id"], acct["refresh_token"])).fetchone()
    assert row is not None
    return int(row[0]), str(acct["calendar_id"])


def _outlook_event(emu: Any, ext_calendar_id: str, subject: str) -> None:
    start, end = _when(2, 10)
    emu.outlook("POST", f"/calendars/{quote(ext_calendar_id, safe='')}/events", {
        "subject": subject, "start": {"dateTime": start, "timeZone": "W. Europe Standard Time"},
        "end": {"dateTime": end, "timeZone": "W. Europe Standard Time"}})


def _event(**arguments: object) -> dict[str, Any]:
    return {"field": "AutoSync", "arguments": arguments}


def _handle(payload: Any) -> dict[str, str]:
    from autosync.services import adhoc

    return adhoc.handle(payload, 30)


def _names(db: psycopg.Connection, calendar_id: int) -> list[str]:
    return sorted(e["eventName"] for e in events(db, calendar_id).values())


def _count(db: psycopg.Connection, table: str) -> int:
    row = db.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608 - fixed table names
    assert row is not None
    return int(row[0])


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the installed `autosync` console script with the test environment (same DB, broker, emulator)."""
    exe = Path(sys.executable).with_name("autosync")
    if not exe.exists():
        pytest.skip(f"{exe} is not installed (pip install -e . into the virtualenv)")
    return subprocess.run([str(exe), *args], env=dict(os.environ), capture_output=True, text=True,
                          timeout=timeout, check=False)


# --- the AutoSync event -------------------------------------------------------------------------


def test_valid_event_answers_exactly_ok_and_the_users_events_are_imported(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    other = link(db, emu, "google", email="carol@example.com")
    _google_event(emu, cal, "Design review")
    _google_event(emu, other, "Not requested")
    assert _handle(_event(userId=cal.user_id, silentNotification=0, calendarType=1)) == OK
    assert _names(db, cal.calendar_id) == ["Design review"]
    assert events(db, other.calendar_id) == {} and run_rows(db, other.calendar_id) == []
    assert _count(db, "notification") == 0  # not silent: nothing to notify
    req = db.execute('SELECT "userId", "calendarType", source, "finishedAt" IS NOT NULL FROM sync_request'
                     ).fetchall()
    assert req == [(cal.user_id, 1, "AutoSync", True)]


@pytest.mark.parametrize("payload", [
    {"field": "AutoSync"}, {"field": "AutoSync", "arguments": None}, {"field": "AutoSync", "arguments": {}},
    {"field": "AutoSync", "arguments": {"userId": None, "calendarType": 1}},
], ids=["no-arguments", "null-arguments", "empty-arguments", "null-user"])
def test_event_without_a_user_is_refused_and_syncs_nobody(worker, db, emu, payload: dict[str, Any]) -> None:
    alice = link(db, emu, "google")
    _google_event(emu, alice, "Alice's")
    answer = _handle(json.dumps(payload))
    assert answer["Status"] == "ERROR" and answer["Statuscode"] == "ER003" and "userId" in answer["Message"]
    assert _count(db, "sync_request") == 0 and _count(db, "sync_run") == 0
    assert emu.requests()["total"] == 0


def test_event_without_calendar_type_syncs_google_and_outlook(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    outlook_id, outlook_ext = _outlook_calendar(db, emu, cal.user_id)
    _google_event(emu, cal, "From Google")
    _outlook_event(emu, outlook_ext, "From Outlook")
    assert _handle(_event(userId=cal.user_id)) == OK
    assert _names(db, cal.calendar_id) == ["From Google"] and _names(db, outlook_id) == ["From Outlook"]
    assert [r["outcome"] for r in run_rows(db, outlook_id)] == ["ok"]


def test_calendar_type_selects_one_provider(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    outlook_id, outlook_ext = _outlook_calendar(db, emu, cal.user_id)
    _outlook_event(emu, outlook_ext, "From Outlook")
    assert _handle(_event(userId=cal.user_id, calendarType=2)) == OK
    assert _names(db, outlook_id) == ["From Outlook"]
    assert run_rows(db, cal.calendar_id) == [] and emu.requests(provider="google")["total"] == 0


INVALID = {
    "not-json": ("{AutoSync", "ER001"),
    "not-an-object": ('["AutoSync"]', "ER001"),
    "wrong-field": ({"field": "SyncAll", "arguments": {}}, "ER002"),
    "string-user-id": (_event(userId="1"), "ER003"),
    "calendar-type-3": (_event(userId=1, calendarType=3), "ER003"),
    "silent-2": (_event(userId=1, silentNotification=2), "ER003"),
    "unknown-argument": (_event(userId=1, force=True), "ER003"),
    "user-id-beyond-bigint": (_event(userId=2**63), "ER003"),
    "arguments-a-list": ({"field": "AutoSync", "arguments": [1]}, "ER003"),
    "field-an-object": ({"field": {"x": 1}, "arguments": {"userId": 1}}, "ER002"),
    "deeply-nested": ('{"field": "AutoSync", "arguments": {"userId": 1}, "x": ' + "[" * 30000 + "]" * 30000 + "}",
                      "ER001"),
    "huge": (json.dumps({"field": "AutoSync", "arguments": {"userId": 1}, "pad": "x" * 70000}), "ER001"),
    "unknown-user": (_event(userId=987654), "ER004"),
}


@pytest.mark.parametrize("case", list(INVALID), ids=list(INVALID))
def test_invalid_event_is_answered_with_its_error_code_and_nothing_is_enqueued(worker, db, emu, case: str) -> None:
    link(db, emu, "google")  # userId 1 exists: only the malformed part can be the reason
    payload, code = INVALID[case]
    answer = _handle(payload)
    assert answer["Status"] == "ERROR" and answer["Statuscode"] == code and answer["Message"]
    assert _count(db, "sync_request") == 0 and _count(db, "sync_run") == 0
    assert emu.requests()["total"] == 0


def test_silent_notification_queues_a_sync_complete_notification(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    _google_event(emu, cal, "Standup")
    assert _handle(_event(userId=cal.user_id, silentNotification=1)) == OK
    notes = db.execute('SELECT "userId", kind, payload FROM notification').fetchall()
    assert len(notes) == 1 and notes[0][:2] == (cal.user_id, "sync_complete")
    assert notes[0][2]["silentNotification"] == 1 and notes[0][2]["failed"] == 0
    assert _names(db, cal.calendar_id) == ["Standup"]


def test_failed_sync_is_answered_with_an_error(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    emu.revoke(cal.account_id)
    answer = _handle(_event(userId=cal.user_id))
    assert answer["Status"] == "ERROR" and answer["Statuscode"] == "ER005"


# --- the command line ---------------------------------------------------------------------------


def test_cli_handle_answers_ok_and_syncs(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    _google_event(emu, cal, "Via CLI")
    done = _cli("handle", json.dumps(_event(userId=cal.user_id)), "--timeout", "30")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == OK
    assert _names(db, cal.calendar_id) == ["Via CLI"]


def test_cli_handle_rejects_an_invalid_event_without_enqueuing(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    done = _cli("handle", json.dumps(_event(userId=str(cal.user_id))))
    assert done.returncode == 1
    answer = json.loads(done.stdout)
    assert answer["Status"] == "ERROR" and answer["Statuscode"] == "ER003"
    assert _count(db, "sync_request") == 0 and _count(db, "sync_run") == 0


def test_cli_sync_wait_prints_a_json_summary_and_exits_zero(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    made = _google_event(emu, cal, "Planning")
    done = _cli("sync", "--user", str(cal.user_id), "--wait", "30")
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["done"] is True and summary["timedOut"] is False
    assert [(r["calendarId"], r["outcome"], r["eventsUpserted"]) for r in summary["runs"]] == [
        (cal.calendar_id, "ok", 1)]
    assert list(events(db, cal.calendar_id)) == [made]


def test_cli_sync_exits_non_zero_when_the_run_fails(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    emu.revoke(cal.account_id)
    done = _cli("sync", "--user", str(cal.user_id), "--wait", "30")
    assert done.returncode != 0
    summary = json.loads(done.stdout)
    assert [r["outcome"] for r in summary["runs"]] == ["needs_reauth"]


# --- PostgreSQL or the broker down --------------------------------------------------------------


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(args: list[str], **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    import time

    started = time.monotonic()
    done = subprocess.run(args, env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=False)
    return done, time.monotonic() - started


@pytest.mark.parametrize("service", ["database", "broker"])
def test_handle_answers_er007_within_seconds_when_a_service_is_down_and_records_nothing(worker, db, emu,
                                                                                       service: str) -> None:
    cal = link(db, emu, "google")
    variable = {"database": "AUTOSYNC_DATABASE_URL", "broker": "AUTOSYNC_BROKER_URL"}[service]
    dead = {"database": f"postgresql://postgres@127.0.0.1:{_closed_port()}/autosync",
            "broker": f"redis://127.0.0.1:{_closed_port()}/0"}[service]
    exe = str(Path(sys.executable).with_name("autosync"))
    done, took = _run([exe, "handle", json.dumps(_event(userId=cal.user_id)), "--timeout", "30"], **{variable: dead})
    assert done.returncode == 3 and done.stderr == "", done.stdout + done.stderr  # the JSON answer, nothing else
    answer = json.loads(done.stdout)
    assert answer["Status"] == "ERROR" and answer["Statuscode"] == "ER007" and variable in answer["Message"]
    assert took < 10
    assert _count(db, "sync_request") == 0 and _count(db, "sync_run") == 0 and emu.requests()["total"] == 0


def test_a_request_whose_message_cannot_reach_the_broker_is_closed_with_the_reason(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    # The broker dies between the check and the publish: enqueue() itself meets the dead broker.
    code = ("from autosync.errors import ServiceUnavailable\nfrom autosync.services import adhoc\n"
            f"try:\n    adhoc.enqueue({cal.user_id}, None)\nexcept ServiceUnavailable as exc:\n    print(exc)\n")
    done, _ = _run([sys.executable, "-c", code], AUTOSYNC_BROKER_URL=f"redis://127.0.0.1:{_closed_port()}/0")
    assert "cannot connect to the broker" in done.stdout, done.stdout + done.stderr
    rows = db.execute('SELECT pending, "finishedAt" IS NOT NULL, error FROM sync_request').fetchall()
    assert len(rows) == 1 and rows[0][:2] == (0, True) and "AUTOSYNC_BROKER_URL" in rows[0][2]
    assert _count(db, "sync_run") == 0

"""Google pull sync failure paths end to end: tokens, re-auth, retried and permanent faults, skips, coalescing."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.e2e.helpers import Linked, events, link, run_rows, sync

LIST = "google.events.list"
TOKEN = "google.token"


def _timed(summary: str, offset: int, hour: int, **extra: object) -> dict[str, Any]:
    d = (datetime.now(UTC) + timedelta(days=offset)).date().isoformat()
    return {"summary": summary, "start": {"dateTime": f"{d}T{hour:02d}:00:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": f"{d}T{hour + 1:02d}:00:00", "timeZone": "Europe/Berlin"}, **extra}


def _google_error(status: int, reason: str, message: str, domain: str = "global") -> dict[str, Any]:
    return {"error": {"errors": [{"domain": domain, "reason": reason, "message": message}],
                      "code": status, "message": message}}


def _calls(emu: Any, endpoint: str) -> list[dict[str, Any]]:
    return list(emu.requests(provider="google", endpoint=endpoint)["requests"])


def _calendar(db: psycopg.Connection, calendar_id: int) -> dict[str, Any]:
    with db.cursor(row_factory=psycopg.rows.dict_row) as cur:
        row = cur.execute('SELECT * FROM calendar WHERE "calendarId" = %s', (calendar_id,)).fetchone()
    assert row is not None
    return row


def _same_account_calendar(db: psycopg.Connection, emu: Any, cal: Linked) -> int:
    """A second calendar of the same Google account, linked by the app as its own calendar row."""
    ext_id = emu.create_calendar(cal.account_id, name="Team")
    row = db.execute(
        'INSERT INTO calendar ("userId", "calendarType", "extCalendarId", "socialAccountId", "refreshToken", status) '
        'VALUES (%s, 1, %s, %s, %s, true) RETURNING "calendarId"',
        (cal.user_id, ext_id, cal.account_id, cal.refresh_token)).fetchone()
    assert row is not None
    return int(row[0])


def _sync_calendar(user_id: int, calendar_id: int, timeout: float = 30) -> dict[str, Any]:
    from autosync.services import adhoc

    summary = adhoc.wait(adhoc.enqueue(user_id, None, calendar_id=calendar_id), timeout)
    assert summary["done"], summary
    return summary


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _wait_for_calls(emu: Any, endpoint: str, n: int, within: float = 5.0) -> list[dict[str, Any]]:
    """The request log once it holds n calls (a slow response is logged only when it is finally answered)."""
    deadline = time.monotonic() + within
    while len(calls := _calls(emu, endpoint)) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    return calls


# --- tokens -------------------------------------------------------------------------------------


def test_missing_token_is_refreshed_once_and_saved_on_every_calendar_of_the_account(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    team = _same_account_calendar(db, emu, cal)
    other = link(db, emu, "google", email="carol@example.com")  # another account: untouched
    emu.google_insert(cal.ext_calendar_id, _timed("Standup", 1, 9))
    before = _utcnow()
    summary = _sync_calendar(cal.user_id, cal.calendar_id)
    assert [r["outcome"] for r in summary["runs"]] == ["ok"]
    assert len(_calls(emu, TOKEN)) == 1
    first, second = _calendar(db, cal.calendar_id), _calendar(db, team)
    assert first["token"] and first["token"] == second["token"]
    assert first["accessTokenExpirationDate"] == second["accessTokenExpirationDate"]
    expires = first["accessTokenExpirationDate"]
    assert before + timedelta(minutes=55) < expires < _utcnow() + timedelta(minutes=61)
    # Google sends no new refresh token: the stored one is kept on both rows.
    assert first["refreshToken"] == second["refreshToken"] == cal.refresh_token
    assert _calendar(db, other.calendar_id)["token"] is None
    # The second calendar uses the shared token: no refresh at all.
    emu.clear_requests()
    assert [r["outcome"] for r in _sync_calendar(cal.user_id, team)["runs"]] == ["ok"]
    assert _calls(emu, TOKEN) == [] and len(_calls(emu, LIST)) == 1


def test_expired_token_is_refreshed_and_a_valid_one_is_not(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    sync(cal.user_id)
    old = _calendar(db, cal.calendar_id)["token"]
    db.execute('UPDATE calendar SET "accessTokenExpirationDate" = %s WHERE "calendarId" = %s',
               (_utcnow() - timedelta(minutes=5), cal.calendar_id))
    emu.clear_requests()
    assert sync(cal.user_id)["runs"][0]["outcome"] == "ok"
    assert len(_calls(emu, TOKEN)) == 1
    row = _calendar(db, cal.calendar_id)
    assert row["token"] != old and row["accessTokenExpirationDate"] > _utcnow() + timedelta(minutes=55)
    emu.clear_requests()
    assert sync(cal.user_id)["runs"][0]["outcome"] == "ok"
    assert _calls(emu, TOKEN) == [] and len(_calls(emu, LIST)) == 1


def test_concurrent_runs_of_one_account_refresh_its_token_once(worker, db, emu) -> None:
    from autosync.services import adhoc

    cal = link(db, emu, "google")
    team = _same_account_calendar(db, emu, cal)
    # A slow token endpoint keeps the first refresh in flight while the other run asks for a token.
    emu.add_fault("slow", provider="google", endpoint=TOKEN, delay=1.0)
    requests = [adhoc.enqueue(cal.user_id, None, calendar_id=c) for c in (cal.calendar_id, team)]
    summaries = [adhoc.wait(r, 30) for r in requests]
    assert [[r["outcome"] for r in s["runs"]] for s in summaries] == [["ok"], ["ok"]]
    assert len(_calls(emu, TOKEN)) == 1
    a, b = run_rows(db, cal.calendar_id)[0], run_rows(db, team)[0]
    assert a["startedAt"] < b["finishedAt"] and b["startedAt"] < a["finishedAt"]  # they did overlap
    assert _calendar(db, cal.calendar_id)["token"] == _calendar(db, team)["token"]


def test_revoked_grant_needs_reauth_without_retries_until_a_new_refresh_token_is_stored(worker, db, emu) -> None:
    from autosync.tasks import fan_out

    cal = link(db, emu, "google")
    team = _same_account_calendar(db, emu, cal)
    emu.google_insert(cal.ext_calendar_id, _timed("Standup", 1, 9))
    emu.revoke(cal.account_id)
    summary = _sync_calendar(cal.user_id, cal.calendar_id)
    run = summary["runs"][0]
    assert run["outcome"] == "needs_reauth" and "invalid_grant" in run["error"]
    assert len(_calls(emu, TOKEN)) == 1 and _calls(emu, LIST) == []  # no retry loop
    for calendar_id in (cal.calendar_id, team):  # the whole account needs re-authorization
        row = _calendar(db, calendar_id)
        assert row["needsReauth"] is True and "invalid_grant" in row["reauthReason"]
    notes = db.execute('SELECT "userId", kind, payload FROM notification').fetchall()
    assert len(notes) == 1 and notes[0][:2] == (cal.user_id, "needs_reauth")
    assert sorted(notes[0][2]["calendarIds"]) == sorted([cal.calendar_id, team])
    # Fan-outs and ad-hoc syncs skip the account: no run, no request.
    emu.clear_requests()
    assert fan_out.apply(args=([1],)).get() == 0
    skipped = sync(cal.user_id)
    assert skipped["runs"] == [] and skipped["failed"] == 0
    assert db.execute("SELECT count(*) FROM sync_run").fetchone() == (1,)
    assert emu.requests(provider="google")["total"] == 0
    # The user re-authorizes: the app stores the new refresh token, and the calendar syncs again.
    fresh = emu.new_refresh_token(cal.account_id)
    db.execute('UPDATE calendar SET "refreshToken" = %s WHERE "socialAccountId" = %s', (fresh, cal.account_id))
    again = _sync_calendar(cal.user_id, cal.calendar_id)
    assert [r["outcome"] for r in again["runs"]] == ["ok"]
    assert len(_calls(emu, TOKEN)) == 1
    assert [e["eventName"] for e in events(db, cal.calendar_id).values()] == ["Standup"]
    row = _calendar(db, cal.calendar_id)
    assert row["needsReauth"] is False and row["reauthReason"] is None and row["refreshToken"] == fresh


def test_concurrent_runs_of_a_revoked_account_try_the_dead_refresh_token_once(worker, db, emu) -> None:
    from autosync.services import adhoc

    cal = link(db, emu, "google")
    team = _same_account_calendar(db, emu, cal)
    emu.revoke(cal.account_id)
    emu.add_fault("slow", provider="google", endpoint=TOKEN, delay=1.0)
    requests = [adhoc.enqueue(cal.user_id, None, calendar_id=c) for c in (cal.calendar_id, team)]
    summaries = [adhoc.wait(r, 30) for r in requests]
    assert [[r["outcome"] for r in s["runs"]] for s in summaries] == [["needs_reauth"], ["needs_reauth"]]
    assert len(_calls(emu, TOKEN)) == 1
    assert db.execute("SELECT kind FROM notification").fetchall() == [("needs_reauth",)]


def test_refused_access_token_is_refreshed_once_then_the_listing_succeeds(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    sync(cal.user_id)
    old = _calendar(db, cal.calendar_id)["token"]
    emu.google_insert(cal.ext_calendar_id, _timed("Late addition", 2, 14))
    emu.expire_access_tokens(cal.account_id)  # the DB still believes the token valid for an hour
    emu.clear_requests()
    assert sync(cal.user_id)["runs"][0]["outcome"] == "ok"
    assert len(_calls(emu, TOKEN)) == 1
    assert [r["status"] for r in _calls(emu, LIST)] == [401, 200]
    assert _calendar(db, cal.calendar_id)["token"] != old
    assert [e["eventName"] for e in events(db, cal.calendar_id).values()] == ["Late addition"]


def test_access_token_refused_again_after_a_refresh_fails_the_run_without_a_refresh_loop(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    sync(cal.user_id)
    emu.clear_requests()
    emu.add_fault("status", provider="google", endpoint=LIST, status=401, count=50)
    run = sync(cal.user_id, timeout=60)["runs"][0]
    assert run["outcome"] in ("failed", "needs_reauth") and "401" in run["error"]
    assert len(_calls(emu, TOKEN)) == 1 and len(_calls(emu, LIST)) == 2


# --- faults on events.list ----------------------------------------------------------------------


# fault spec, and the statuses the emulator logs for the failed attempt and the retry
RETRIED: dict[str, tuple[dict[str, Any], list[int | None]]] = {
    "429-retry-after": (dict(kind="status", status=429, headers={"Retry-After": "1"}, body=_google_error(
        429, "rateLimitExceeded", "Rate Limit Exceeded", "usageLimits")), [429, 200]),
    "403-rateLimitExceeded": (dict(kind="status", status=403, body=_google_error(
        403, "rateLimitExceeded", "Rate Limit Exceeded", "usageLimits")), [403, 200]),
    "403-userRateLimitExceeded": (dict(kind="status", status=403, body=_google_error(
        403, "userRateLimitExceeded", "User Rate Limit Exceeded", "usageLimits")), [403, 200]),
    "500": (dict(kind="status", status=500), [500, 200]),
    "503": (dict(kind="status", status=503), [503, 200]),
    "connection-reset": (dict(kind="reset"), [None, 200]),  # dropped without an answer
    "slow-beyond-read-timeout": (dict(kind="slow", delay=4.0), [200, 200]),  # answered after we gave up
    "malformed-json": (dict(kind="malformed"), [200, 200]),
}


@pytest.mark.parametrize("fault", list(RETRIED), ids=list(RETRIED))
def test_transient_list_failure_is_retried_and_the_run_imports_everything(worker, db, emu, fault: str) -> None:
    cal = link(db, emu, "google")
    made = [emu.google_insert(cal.ext_calendar_id, _timed(f"E{i}", 1 + i, 9))["id"] for i in range(3)]
    spec, statuses = RETRIED[fault]
    emu.add_fault(provider="google", endpoint=LIST, **spec)
    summary = sync(cal.user_id)
    run = summary["runs"][0]
    assert run["outcome"] == "ok" and run["eventsUpserted"] == 3, run
    assert sorted(events(db, cal.calendar_id, live_only=True)) == sorted(made)
    calls = _wait_for_calls(emu, LIST, 2)
    assert [c["status"] for c in calls] == statuses, calls  # the failed attempt and exactly one retry
    assert emu.faults()[0]["count"] == 0
    assert _calendar(db, cal.calendar_id)["deltaLink"]
    if fault == "429-retry-after":
        assert calls[1]["time"] - calls[0]["time"] >= 0.9  # Retry-After was honoured


@pytest.mark.parametrize("reason", ["forbidden", "insufficientPermissions"])
def test_permission_403_is_not_retried_and_fails_the_run_with_the_reason(worker, db, emu, reason: str) -> None:
    cal = link(db, emu, "google")
    emu.google_insert(cal.ext_calendar_id, _timed("Hidden", 1, 9))
    emu.add_fault("status", provider="google", endpoint=LIST, status=403, count=5,
                  body=_google_error(403, reason, "Forbidden"))
    run = sync(cal.user_id)["runs"][0]
    assert run["outcome"] == "failed" and reason in run["error"] and "403" in run["error"]
    assert len(_calls(emu, LIST)) == 1
    row = _calendar(db, cal.calendar_id)
    assert row["lastOutcome"] == "failed" and reason in row["lastError"]
    assert row["status"] is True and row["deltaLink"] is None  # still linked, nothing committed
    assert events(db, cal.calendar_id) == {}


def test_calendar_gone_404_deactivates_the_calendar_and_fails_the_run(worker, db, emu) -> None:
    from autosync.tasks import fan_out

    cal = link(db, emu, "google")
    emu.add_fault("status", provider="google", endpoint=LIST, status=404, count=5,
                  body=_google_error(404, "notFound", "Not Found"))
    run = sync(cal.user_id)["runs"][0]
    assert run["outcome"] == "failed" and "deactivated" in run["error"]
    assert len(_calls(emu, LIST)) == 1
    row = _calendar(db, cal.calendar_id)
    assert row["status"] is False and "404" in row["deactivatedReason"]
    emu.clear_requests()
    assert fan_out.apply(args=([1],)).get() == 0  # an inactive calendar is not synced again
    assert emu.requests(provider="google")["total"] == 0


# --- items and concurrency ----------------------------------------------------------------------


def test_malformed_event_is_skipped_and_recorded_while_the_rest_imports(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    good = [emu.google_insert(cal.ext_calendar_id, _timed(f"Good {i}", 1 + i, 9))["id"] for i in range(2)]
    # Google accepts any reminder override; ours is unreadable and the item must be skipped alone.
    bad = emu.google_insert(cal.ext_calendar_id, _timed("Bad", 4, 9, reminders={
        "useDefault": False, "overrides": [{"method": "popup", "minutes": "soon"}]}))["id"]
    summary = sync(cal.user_id)
    run = summary["runs"][0]
    assert run["outcome"] == "ok" and run["eventsSkipped"] == 1 and run["eventsUpserted"] == 2
    assert sorted(events(db, cal.calendar_id)) == sorted(good)
    skips = db.execute('SELECT "runId", "calendarId", "extEventId", reason FROM sync_skip').fetchall()
    assert len(skips) == 1
    assert skips[0][:3] == (run["runId"], cal.calendar_id, bad) and "minutes" in skips[0][3]
    assert _calendar(db, cal.calendar_id)["deltaLink"]  # the cursor advanced past the bad item


def test_concurrent_adhoc_requests_for_one_calendar_coalesce_into_one_rerun(worker, db, emu) -> None:
    from autosync.services import adhoc

    cal = link(db, emu, "google")
    made = [emu.google_insert(cal.ext_calendar_id, _timed(f"E{i}", 1 + i, 9))["id"] for i in range(3)]
    emu.add_fault("slow", provider="google", endpoint=LIST, delay=1.0)  # keep the first run busy
    requests = [adhoc.enqueue(cal.user_id, None) for _ in range(2)]
    summaries = [adhoc.wait(r, 30) for r in requests]
    assert all(s["done"] and s["failed"] == 0 for s in summaries), summaries
    runs = run_rows(db, cal.calendar_id)
    assert [r["reason"] for r in runs] == ["adhoc", "rerun"] and all(r["outcome"] == "ok" for r in runs)
    assert runs[0]["rerunRequested"] and sorted(runs[1]["requestIds"]) == sorted(requests)
    assert runs[1]["startedAt"] >= runs[0]["finishedAt"]  # never two runs of one calendar at once
    rows = db.execute('SELECT "extEventId", count(*) FROM cal_event GROUP BY 1').fetchall()
    assert sorted(rows) == sorted((e, 1) for e in made)
    assert len(_calls(emu, LIST)) == 2  # the full listing, then the rerun's incremental one


def test_a_nul_character_from_the_provider_does_not_fail_the_page(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    odd = emu.google_insert(cal.ext_calendar_id, _timed("Odd\u0000title", 1, 9, description="nul\u0000inside"))
    fine = emu.google_insert(cal.ext_calendar_id, _timed("Fine", 2, 9))
    run = sync(cal.user_id)["runs"][0]
    assert run["outcome"] == "ok" and run["eventsUpserted"] == 2
    rows = events(db, cal.calendar_id)
    assert rows[odd["id"]]["eventName"] == "Oddtitle" and rows[odd["id"]]["description"] == "nulinside"
    assert rows[fine["id"]]["status"]
    assert sync(cal.user_id)["runs"][0]["eventsUpserted"] == 0  # stable: nothing rewritten next time

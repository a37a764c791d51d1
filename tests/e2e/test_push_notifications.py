"""Change notifications end to end: Google watch channels and Graph subscriptions.

A real worker, PostgreSQL, Redis, the emulator delivering notifications over HTTP, and
`autosync webhooks` receiving them. With notifications on, a watched calendar is left alone by the
beat and synced when its provider says it changed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
import requests

from tests.e2e.helpers import Linked, events, link, run_rows, sync
from tests.e2e.procs import free_port


@contextmanager
def _notified_at(webhook_url: str) -> Iterator[None]:
    """Workers (the in-process test worker) configured with AUTOSYNC_WEBHOOK_URL."""
    from autosync.services import context as ctxmod
    from autosync.settings import get_settings

    saved = ctxmod._ctx, ctxmod._pid
    ctxmod._ctx, ctxmod._pid = ctxmod.build(replace(get_settings(), webhook_url=webhook_url)), os.getpid()
    try:
        yield
    finally:
        ctxmod._ctx, ctxmod._pid = saved


@pytest.fixture()
def hooks(worker: object) -> Iterator[Any]:
    """`autosync webhooks` on a free port, and workers configured to be notified there."""
    from autosync.webhooks import Receiver

    receiver = Receiver("127.0.0.1", 0).start()
    try:
        with _notified_at(receiver.url + "/hooks"):
            yield receiver
    finally:
        receiver.stop()


def _day(offset: int) -> str:
    return (datetime.now(UTC) + timedelta(days=offset)).date().isoformat()


def _google_event(summary: str, offset: int = 2) -> dict[str, Any]:
    d = _day(offset)
    return {"summary": summary, "start": {"dateTime": f"{d}T09:00:00Z"}, "end": {"dateTime": f"{d}T10:00:00Z"}}


def _outlook_event(subject: str, offset: int = 2) -> dict[str, Any]:
    d = _day(offset)
    return {"subject": subject, "start": {"dateTime": f"{d}T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": f"{d}T10:00:00", "timeZone": "UTC"}}


def _channels(db: psycopg.Connection) -> list[dict[str, Any]]:
    with db.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute('SELECT * FROM push_channel ORDER BY "createdAt"').fetchall()


def _secret(emu: Any, channel_id: str) -> str:
    """The secret a channel's notifications carry, as the provider knows it (the database has only its hash)."""
    state = emu.push_state()
    found = {c["id"]: c["token"] for c in state["channels"]}
    found.update({s["id"]: s["clientState"] for s in state["subscriptions"]})
    return str(found[channel_id])


def _wait_runs(db: psycopg.Connection, calendar_id: int, count: int, timeout: float = 20) -> list[dict[str, Any]]:
    """Wait until the calendar has `count` finished runs and none open; returns them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = run_rows(db, calendar_id)
        if len(rows) >= count and all(r["finishedAt"] for r in rows):
            return rows
        time.sleep(0.05)
    raise AssertionError(f"calendar {calendar_id}: wanted {count} finished runs, got {run_rows(db, calendar_id)}")


def _beat(types: list[int] | None = None) -> int:
    """One beat fan-out, run here; its steps go through the broker to the worker."""
    from autosync.tasks import fan_out

    return int(fan_out.apply(args=(types or [1, 2],)).get())


def _settle(emu: Any, db: psycopg.Connection, seconds: float = 0.5) -> None:
    """Let deliveries and the runs they start finish."""
    emu.wait_push_idle()
    deadline = time.monotonic() + 20
    while db.execute('SELECT count(*) FROM sync_run WHERE "finishedAt" IS NULL').fetchone()[0]:
        assert time.monotonic() < deadline, "runs did not finish"
        time.sleep(0.05)
    time.sleep(seconds)
    emu.wait_push_idle()


def _watched_google(db: psycopg.Connection, emu: Any) -> Linked:
    cal = link(db, emu, "google")
    emu.google_insert(cal.ext_calendar_id, _google_event("Kick-off"))
    summary = sync(cal.user_id)
    assert [r["outcome"] for r in summary["runs"]] == ["ok"]
    _settle(emu, db)
    return cal


def test_a_google_calendar_is_watched_and_a_change_syncs_it_without_the_beat(hooks, db, emu) -> None:
    cal = _watched_google(db, emu)
    [channel] = _channels(db)
    assert channel["calendarId"] == cal.calendar_id and channel["stoppedAt"] is None
    assert channel["expiresAt"] > datetime.now(UTC) + timedelta(hours=60)
    # The channel was made before the fetch, with our receiver and secret, and one request.
    log = emu.requests(provider="google")["requests"]
    api = [r["endpoint"] for r in log if r["endpoint"] != "google.token"]
    assert api == ["google.events.watch", "google.events.list"]
    [sync_msg] = emu.push_deliveries(provider="google")
    assert sync_msg["kind"] == "sync" and sync_msg["status"] == 200
    assert sync_msg["url"] == hooks.url + "/hooks/google"
    from autosync.services.status import render, status_rows

    [row] = status_rows(cal.user_id)
    assert row["watchedUntil"] == channel["expiresAt"] and row["watchError"] is None
    assert "1 watched" in render([row])
    # The handshake may arrive before the channel is stored; it starts no run either way.
    assert len(run_rows(db, cal.calendar_id)) == 1

    # The beat leaves a watched, healthy calendar alone: no run, no request.
    emu.clear_requests()
    assert _beat() == 0
    assert emu.requests(provider="google")["total"] == 0

    # A person edits the calendar in Google: the notification alone brings the change in.
    emu.google_insert(cal.ext_calendar_id, _google_event("Added in Google", 3))
    runs = _wait_runs(db, cal.calendar_id, 2)
    assert runs[-1]["reason"] == "watch" and runs[-1]["outcome"] == "ok"
    assert runs[-1]["providerRequests"] == 1
    assert "Added in Google" in {e["eventName"] for e in events(db, cal.calendar_id).values()}
    assert db.execute('SELECT messages >= 1, "lastEvent" FROM push_channel').fetchone() == (True, "exists")


def test_a_forged_or_unknown_google_notification_starts_nothing(hooks, db, emu) -> None:
    cal = _watched_google(db, emu)
    [channel] = _channels(db)
    base = {"X-Goog-Resource-ID": channel["resourceId"], "X-Goog-Resource-State": "exists",
            "X-Goog-Resource-URI": "https://www.googleapis.com/calendar/v3/calendars/x/events",
            "X-Goog-Message-Number": "7"}
    forged = requests.post(hooks.url + "/hooks/google", timeout=5, headers={
        **base, "X-Goog-Channel-ID": channel["channelId"], "X-Goog-Channel-Token": "not-the-secret"})
    assert forged.status_code == 403
    unknown = requests.post(hooks.url + "/hooks/google", timeout=5, headers={
        **base, "X-Goog-Channel-ID": "no-such-channel", "X-Goog-Channel-Token": _secret(emu, channel["channelId"])})
    assert unknown.status_code == 200  # answered, so Google does not retry, and ignored
    time.sleep(0.5)
    assert len(run_rows(db, cal.calendar_id)) == 1
    assert db.execute('SELECT "lastEvent" IS DISTINCT FROM \'exists\' FROM push_channel').fetchone() == (True,)


def test_a_google_channel_is_replaced_before_it_expires_and_the_old_one_stopped(hooks, db, emu) -> None:
    cal = _watched_google(db, emu)
    [old] = _channels(db)
    # Time passes: the channel now expires within AUTOSYNC_WATCH_RENEW_BEFORE.
    db.execute('UPDATE push_channel SET "expiresAt" = now() + interval \'1 hour\'')
    emu.clear_requests()
    assert _beat() == 1
    _settle(emu, db)
    old_row, new_row = _channels(db)
    assert old_row["channelId"] == old["channelId"] and old_row["stoppedAt"] is not None
    assert new_row["stoppedAt"] is None and new_row["channelId"] != old["channelId"]
    api = [r["endpoint"] for r in emu.requests(provider="google")["requests"]]
    assert api == ["google.events.watch", "google.channels.stop", "google.events.list"]
    state = {c["id"]: c for c in emu.push_state()["channels"]}
    assert state[old["channelId"]]["stopped"] and not state[new_row["channelId"]]["stopped"]
    # Notifications now come through the new channel only.
    emu.google_insert(cal.ext_calendar_id, _google_event("After renewal", 4))
    _wait_runs(db, cal.calendar_id, 3)
    assert "After renewal" in {e["eventName"] for e in events(db, cal.calendar_id).values()}


def test_lost_notifications_are_caught_by_the_safety_poll(hooks, db, emu) -> None:
    cal = _watched_google(db, emu)
    emu.push_settings(paused=True)  # notifications get lost, as they can in real life
    emu.google_insert(cal.ext_calendar_id, _google_event("Never notified", 5))
    assert _beat() == 0
    assert "Never notified" not in {e["eventName"] for e in events(db, cal.calendar_id).values()}
    # AUTOSYNC_WATCH_SAFETY_POLL later, the beat polls the calendar anyway.
    db.execute('UPDATE calendar SET "lastSyncDate" = "lastSyncDate" - interval \'7 hours\'')
    assert _beat() == 1
    _wait_runs(db, cal.calendar_id, 2)
    assert "Never notified" in {e["eventName"] for e in events(db, cal.calendar_id).values()}


def test_an_app_change_on_a_watched_calendar_is_pushed_by_the_next_beat_without_an_echo_loop(hooks, db,
                                                                                            emu) -> None:
    cal = _watched_google(db, emu)
    d = (datetime.now(UTC) + timedelta(days=6)).date()
    db.execute('INSERT INTO cal_event ("calendarId", "createdBy", "eventName", "startDate", "endDate", '
               '"startTime", "endTime", "linkAllDay", status) VALUES (%s, %s, %s, %s, %s, %s, %s, false, true)',
               (cal.calendar_id, cal.user_id, "From the app", d, d, "11:00", "12:00"))
    assert _beat() == 1  # pending outbox: the beat runs it although it is watched
    _settle(emu, db)
    names = {e.get("summary") for e in emu.google_list(cal.ext_calendar_id)}
    assert "From the app" in names
    # Our own write notifies us once; that run finds nothing new and pushes nothing: no loop.
    settled = len(run_rows(db, cal.calendar_id))
    time.sleep(1.0)
    _settle(emu, db)
    assert len(run_rows(db, cal.calendar_id)) == settled
    assert len([e for e in emu.google_list(cal.ext_calendar_id) if e.get("summary") == "From the app"]) == 1
    assert _beat() == 0


def test_a_calendar_that_cannot_be_watched_still_syncs_and_stays_polled(hooks, db, emu) -> None:
    cal = link(db, emu, "google")
    emu.add_fault(provider="google", endpoint="google.events.watch", count=1, status=400,
                  body={"error": {"code": 400, "message": "WebHook callback must be HTTPS",
                                  "errors": [{"domain": "global", "reason": "push.webhookUrlNotHttps",
                                              "message": "WebHook callback must be HTTPS"}]}})
    emu.google_insert(cal.ext_calendar_id, _google_event("Still synced"))
    summary = sync(cal.user_id)
    assert [r["outcome"] for r in summary["runs"]] == ["ok"]
    assert "Still synced" in {e["eventName"] for e in events(db, cal.calendar_id).values()}
    assert _channels(db) == []
    error = db.execute('SELECT "watchError" FROM calendar').fetchone()[0]
    assert "push.webhookUrlNotHttps" in error
    # Unwatched, it is polled by every beat, without paying a failing watch request each time.
    emu.clear_requests()
    assert _beat() == 1
    _settle(emu, db)
    assert [r["endpoint"] for r in emu.requests(provider="google")["requests"]] == ["google.events.list"]
    assert _channels(db) == []
    # A day (AUTOSYNC_WATCH_RENEW_BEFORE) later, the next run tries again, and now it works.
    db.execute('UPDATE calendar SET "watchErrorAt" = now() - interval \'25 hours\'')
    assert _beat() == 1
    _settle(emu, db)
    assert len(_channels(db)) == 1
    assert db.execute('SELECT "watchError", "watchErrorAt" FROM calendar').fetchone() == (None, None)
    assert _beat() == 0


def test_a_watch_that_hit_a_provider_hiccup_is_tried_again_by_the_next_run(hooks, db, emu) -> None:
    cal = link(db, emu, "google")
    emu.add_fault(provider="google", endpoint="google.events.watch", count=10, status=503,
                  body={"error": {"code": 503, "message": "Backend Error",
                                  "errors": [{"domain": "global", "reason": "backendError"}]}})
    summary = sync(cal.user_id)
    assert [r["outcome"] for r in summary["runs"]] == ["ok"]  # the sync itself did not suffer
    assert db.execute('SELECT "watchError" IS NOT NULL, "watchErrorAt" FROM calendar').fetchone() == (True, None)
    emu.clear_faults()
    assert _beat() == 1  # unwatched: polled, and the watch is tried again at once
    _settle(emu, db)
    assert len(_channels(db)) == 1


# --- Outlook: one Graph subscription per mailbox ----------------------------------------------------


def _create_outlook(emu: Any, cal_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return emu.outlook("POST", f"/calendars/{quote(cal_id, safe='')}/events", body)


def _watched_outlook(db: psycopg.Connection, emu: Any) -> tuple[Linked, int, str]:
    cal = link(db, emu, "outlook")
    second_ext = emu.create_calendar(cal.account_id, name="Family")
    second = db.execute(
        'INSERT INTO calendar ("userId", "calendarType", "extCalendarId", "socialAccountId", "refreshToken", '
        'status) VALUES (%s, 2, %s, %s, %s, true) RETURNING "calendarId"',
        (cal.user_id, second_ext, cal.account_id, cal.refresh_token)).fetchone()[0]
    _create_outlook(emu, cal.ext_calendar_id, _outlook_event("Planning"))
    summary = sync(cal.user_id)
    assert sorted(r["outcome"] for r in summary["runs"]) == ["ok", "ok"]
    _settle(emu, db)
    return cal, second, second_ext


def test_an_outlook_mailbox_gets_one_validated_subscription_and_changes_sync_its_calendars(hooks, db,
                                                                                          emu) -> None:
    cal, second, second_ext = _watched_outlook(db, emu)
    [sub] = _channels(db)
    assert sub["calendarId"] is None and sub["socialAccountId"] == cal.account_id  # the whole mailbox
    creates = [r for r in emu.requests(provider="outlook")["requests"]
               if r["endpoint"] == "graph.subscriptions.create"]
    assert len(creates) == 1  # two chains of one mailbox, one subscription
    kinds = [(d["kind"], d["status"]) for d in emu.push_deliveries(provider="outlook")]
    assert ("validation", 200) in kinds
    assert _beat() == 0

    _create_outlook(emu, second_ext, _outlook_event("Swimming", 4))
    _wait_runs(db, second, 2)
    assert "Swimming" in {e["eventName"] for e in events(db, second).values()}
    changes = [d for d in emu.push_deliveries(provider="outlook") if d["kind"] == "change"]
    assert changes and all(d["status"] == 202 for d in changes)
    assert db.execute('SELECT "lastEvent" FROM push_channel').fetchone() == ("created",)


def test_an_outlook_subscription_is_renewed_in_place_and_lifecycle_events_are_honoured(hooks, db, emu) -> None:
    cal, second, _ = _watched_outlook(db, emu)
    [sub] = _channels(db)
    db.execute('UPDATE push_channel SET "expiresAt" = now() + interval \'1 hour\'')
    emu.clear_requests()
    assert _beat() == 2
    _settle(emu, db)
    [renewed] = _channels(db)
    assert renewed["channelId"] == sub["channelId"] and renewed["renewedAt"] is not None
    assert renewed["expiresAt"] > datetime.now(UTC) + timedelta(hours=60)
    subs = [r["endpoint"] for r in emu.requests(provider="outlook")["requests"] if "subscriptions" in r["endpoint"]]
    assert subs == ["graph.subscriptions.update"]

    # reauthorizationRequired: renewed (PATCH) by the runs it starts.
    emu.clear_requests()
    emu.push_lifecycle(sub["channelId"], "reauthorizationRequired")
    _wait_runs(db, cal.calendar_id, 3)
    _settle(emu, db)
    subs = [r["endpoint"] for r in emu.requests(provider="outlook")["requests"] if "subscriptions" in r["endpoint"]]
    assert subs == ["graph.subscriptions.update"]

    # subscriptionRemoved: a new subscription replaces it, and the mailbox is synced.
    emu.clear_requests()
    emu.push_lifecycle(sub["channelId"], "subscriptionRemoved")
    _wait_runs(db, cal.calendar_id, 4)
    _settle(emu, db)
    rows = _channels(db)
    assert [r["stoppedAt"] is None for r in rows] == [False, True]
    subs = [r["endpoint"] for r in emu.requests(provider="outlook")["requests"] if "subscriptions" in r["endpoint"]]
    assert subs == ["graph.subscriptions.create"]
    assert run_rows(db, second)[-1]["reason"] == "watch"


# --- the receiver's own outages lose nothing -------------------------------------------------------


def _wait_http(url: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(url, timeout=1).ok:
                return
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer"
        time.sleep(0.05)


def test_a_notification_the_receiver_cannot_queue_is_refused_and_delivered_again(worker, db, emu) -> None:
    from autosync.webhooks import Receiver

    port = free_port()
    with _notified_at(f"http://127.0.0.1:{port}/hooks"):
        receiver = Receiver("127.0.0.1", port).start()
        try:
            cal = _watched_google(db, emu)
        finally:
            receiver.stop()
        # The receiver comes back without a broker: it cannot queue the sync, so it answers 503.
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            dead_broker = f"redis://127.0.0.1:{closed.getsockname()[1]}/0"
        env = {**os.environ, "AUTOSYNC_BROKER_URL": dead_broker, "AUTOSYNC_REDIS_URL": dead_broker}
        proc = subprocess.Popen([sys.executable, "-m", "autosync.cli", "webhooks", "--port", str(port)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            _wait_http(f"http://127.0.0.1:{port}/healthz")
            emu.push_settings(push_retries=6, push_retry_delay=0.5)
            emu.google_insert(cal.ext_calendar_id, _google_event("During the outage", 3))
            deadline = time.monotonic() + 15
            while not [d for d in emu.push_deliveries(provider="google") if d["status"] == 503]:
                assert time.monotonic() < deadline, [(d["kind"], d["status"]) for d in emu.push_deliveries()]
                time.sleep(0.05)
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=10)
        assert "notification not taken" in err  # the refusal is recorded, with why
        # A healthy receiver again: Google's retry brings the change in.
        receiver = Receiver("127.0.0.1", port).start()
        try:
            runs = _wait_runs(db, cal.calendar_id, 2, timeout=30)
        finally:
            receiver.stop()
    assert runs[-1]["reason"] == "watch" and runs[-1]["outcome"] == "ok"
    assert "During the outage" in {e["eventName"] for e in events(db, cal.calendar_id).values()}
    attempts = [(d["kind"], d["status"]) for d in emu.push_deliveries(provider="google") if d["kind"] == "exists"]
    assert attempts[0] == ("exists", 503) and attempts[-1] == ("exists", 200)


def test_channel_secrets_never_reach_the_logs(hooks, db, emu, caplog) -> None:
    caplog.set_level("DEBUG")
    cal = _watched_google(db, emu)
    emu.google_insert(cal.ext_calendar_id, _google_event("Logged", 3))
    _wait_runs(db, cal.calendar_id, 2)
    secrets = [_secret(emu, c["channelId"]) for c in _channels(db)]
    assert secrets and caplog.records
    text = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert not any(secret in text for secret in secrets)


# --- channels nobody needs any more are stopped --------------------------------------------------------


def test_switching_a_calendar_off_stops_its_google_channel(hooks, db, emu) -> None:
    cal = _watched_google(db, emu)
    [channel] = _channels(db)
    db.execute('UPDATE calendar SET status = false WHERE "calendarId" = %s', (cal.calendar_id,))
    emu.clear_requests()
    assert _beat() == 0
    deadline = time.monotonic() + 10
    while _channels(db)[0]["stoppedAt"] is None:
        assert time.monotonic() < deadline, "the channel was not stopped"
        time.sleep(0.05)
    assert [r["endpoint"] for r in emu.requests(provider="google")["requests"]] == ["google.channels.stop"]
    state = {c["id"]: c for c in emu.push_state()["channels"]}
    assert state[channel["channelId"]]["stopped"]
    emu.clear_requests()
    assert _beat() == 0  # nothing left to stop
    time.sleep(0.3)
    assert emu.requests(provider="google")["total"] == 0


def test_a_mailbox_subscription_is_deleted_only_when_none_of_its_calendars_is_active(hooks, db, emu) -> None:
    cal, second, _ = _watched_outlook(db, emu)
    [sub] = _channels(db)
    db.execute('UPDATE calendar SET status = false WHERE "calendarId" = %s', (second,))
    emu.clear_requests()
    assert _beat() == 0
    time.sleep(0.5)
    assert _channels(db)[0]["stoppedAt"] is None  # the other calendar of the mailbox still needs it
    db.execute('UPDATE calendar SET status = false WHERE "calendarId" = %s', (cal.calendar_id,))
    assert _beat() == 0
    deadline = time.monotonic() + 10
    while _channels(db)[0]["stoppedAt"] is None:
        assert time.monotonic() < deadline, "the subscription was not deleted"
        time.sleep(0.05)
    ends = [r["endpoint"] for r in emu.requests(provider="outlook")["requests"] if "subscriptions" in r["endpoint"]]
    assert ends == ["graph.subscriptions.delete"]
    assert [s["deleted"] for s in emu.push_state()["subscriptions"] if s["id"] == sub["channelId"]] == [True]

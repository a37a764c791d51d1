"""Prometheus metrics end to end: the real worker syncs against the emulator, `autosync metrics` runs as
its own process, and its /metrics (scraped over HTTP, parsed by prometheus_client) says what happened.

Worker counters are written by the in-process test worker into Redis and read by the metrics
process: the same path as workers on other hosts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.e2e.helpers import link, sync
from tests.e2e.metrics_helpers import metrics_process, scrape
from tests.e2e.test_pushback_google import app_insert, app_update, at, row


@pytest.fixture(scope="module")
def metrics_url() -> Iterator[str]:
    """`autosync metrics` on a free port, for the module."""
    with metrics_process() as url:
        yield url


def _timed(summary: str, offset: int, hour: int, **extra: object) -> dict[str, Any]:
    d = (datetime.now(UTC) + timedelta(days=offset)).date().isoformat()
    return {"summary": summary, "start": {"dateTime": f"{d}T{hour:02d}:00:00Z"},
            "end": {"dateTime": f"{d}T{hour + 1:02d}:00:00Z"}, **extra}


def _emulator_counts(emu: Any, provider: str, names: dict[str, str]) -> dict[tuple[str, str], float]:
    """(endpoint, status) -> requests, from the emulator's own request log, in our endpoint names."""
    out: dict[tuple[str, str], float] = {}
    for r in emu.requests(provider=provider)["requests"]:
        key = (names.get(r["endpoint"], r["endpoint"]), "connection_error" if r["status"] is None else str(r["status"]))
        out[key] = out.get(key, 0.0) + 1
    return out


def _last_sync_age(db: psycopg.Connection, calendar_id: int) -> float:
    found = db.execute('SELECT extract(epoch FROM now() - ("lastSyncDate" AT TIME ZONE \'UTC\')) FROM calendar '
                       'WHERE "calendarId" = %s', (calendar_id,)).fetchone()
    assert found is not None and found[0] is not None
    return float(found[0])


GOOGLE_NAMES = {"google.token": "token", "google.events.list": "events.list", "google.events.insert": "events.insert",
                "google.events.get": "events.get", "google.events.patch": "events.patch"}


def test_a_sync_with_a_fault_and_a_push_is_counted_as_it_happened(worker, db, emu, metrics_url) -> None:
    alice = link(db, emu, "google")
    for i in range(2):
        emu.google_insert(alice.ext_calendar_id, _timed(f"Standup {i}", 1 + i, 9))
    bob = link(db, emu, "google", email="bob@example.com")
    emu.revoke(bob.account_id)  # bob's run ends in needs_reauth
    event_id = app_insert(db, alice, "Lunch with Ana", at(2, 12), at(2, 13))  # one push waiting
    emu.clear_requests()

    before = scrape(metrics_url)
    assert before.value("autosync_metrics_source_up", source="postgresql") == 1
    assert before.value("autosync_metrics_source_up", source="redis") == 1
    assert before.value("autosync_calendars", provider="google", state="never_synced") == 2
    assert before.value("autosync_outbox_pending", provider="google") == 1
    assert before.value("autosync_outbox_oldest_seconds", provider="google") > 0
    assert before.total("autosync_runs_total") == 0 and before.total("autosync_provider_requests_total") == 0
    # Nothing happened yet, but every run outcome already has its series (so rate() sees the first one).
    assert before.value("autosync_runs_total", provider="google", outcome="needs_reauth") == 0
    assert "autosync_runs_total" in before.names()

    emu.add_fault("status", provider="google", endpoint="google.events.list", status=503)  # retried in-task
    runs = sync(alice.user_id)["runs"] + sync(bob.user_id)["runs"]
    assert sorted(r["outcome"] for r in runs) == ["needs_reauth", "ok"]
    assert runs[0]["pushCreated"] == 1 and row(db, event_id)["extEventId"]

    after = scrape(metrics_url)
    assert after.by("autosync_runs_total", "provider", "outcome") == {("google", "ok"): 1,
                                                                    ("google", "needs_reauth"): 1}
    assert after.value("autosync_run_duration_seconds_count", provider="google") == 2
    assert after.value("autosync_run_duration_seconds_sum", provider="google") > 0
    # Requests by endpoint and status are exactly the emulator's log: the 503, its retry, the push,
    # both token refreshes (bob's refused with 400 invalid_grant).
    requests_seen = after.by("autosync_provider_requests_total", "endpoint", "status", provider="google")
    assert requests_seen == _emulator_counts(emu, "google", GOOGLE_NAMES)
    assert requests_seen == {("events.list", "503"): 1, ("events.list", "200"): 1, ("events.insert", "200"): 1,
                             ("token", "200"): 1, ("token", "400"): 1}
    assert after.value("autosync_provider_request_seconds_count", provider="google", endpoint="events.list") == 2
    assert after.value("autosync_provider_request_seconds_bucket", provider="google", endpoint="events.list",
                       le="+Inf") == 2
    assert after.by("autosync_pushes_total", "provider", "outcome") == {("google", "created"): 1}
    assert after.value("autosync_outbox_pending", provider="google") == 0
    # Calendar states and lag: alice synced just now; bob waits for re-auth and has no lag series.
    assert after.by("autosync_calendars", "provider", "state") == {("google", "ok"): 1, ("google", "needs_reauth"): 1}
    age = _last_sync_age(db, alice.calendar_id)
    assert abs(after.value("autosync_sync_lag_max_seconds", provider="google") - age) < 5
    assert after.value("autosync_sync_lag_seconds_gcount", provider="google") == 1
    assert after.value("autosync_sync_lag_seconds_bucket", provider="google", le="60") == 1
    assert after.value("autosync_calendars_stale", provider="google") == 0
    assert after.value("autosync_runs_in_progress", provider="google") == 0


def test_lag_and_staleness_follow_the_last_successful_sync(worker, db, emu, metrics_url) -> None:
    cal = link(db, emu, "google")
    sync(cal.user_id)
    # As if its last successful sync were two hours ago (a 300 s interval: stale after 900 s).
    db.execute('UPDATE calendar SET "lastSyncDate" = "lastSyncDate" - interval \'2 hours\' WHERE "calendarId" = %s',
               (cal.calendar_id,))
    got = scrape(metrics_url)
    lag = got.value("autosync_sync_lag_max_seconds", provider="google")
    assert 7200 <= lag < 7260
    assert got.value("autosync_sync_lag_seconds_bucket", provider="google", le="3600") == 0
    assert got.value("autosync_sync_lag_seconds_bucket", provider="google", le="10800") == 1
    assert got.value("autosync_calendars_stale", provider="google") == 1
    assert got.value("autosync_sync_interval_seconds") == 300
    sync(cal.user_id)
    assert scrape(metrics_url).value("autosync_calendars_stale", provider="google") == 0


def test_conflicts_skips_and_outlook_requests_are_counted(worker, db, emu, metrics_url) -> None:
    # A conflict the app wins (its edit is later), on Google.
    alice = link(db, emu, "google")
    event_id = app_insert(db, alice, "Lunch", at(2, 12), at(2, 13))
    sync(alice.user_id)
    ext = row(db, event_id)["extEventId"]
    emu.google_patch(alice.ext_calendar_id, ext, {"summary": "Provider title"})
    time.sleep(0.05)
    app_update(db, event_id, eventName="App title")
    # A malformed item (an unreadable reminder) is skipped, the rest imports.
    emu.google_insert(alice.ext_calendar_id, _timed("Bad", 4, 9, reminders={
        "useDefault": False, "overrides": [{"method": "popup", "minutes": "soon"}]}))
    run = sync(alice.user_id)["runs"][0]
    assert run["outcome"] == "ok" and run["conflicts"] == 1 and run["eventsSkipped"] == 1
    # An Outlook calendar: delta links are replayed verbatim, and still land on bounded endpoint names.
    emu.clear_requests()
    carol = link(db, emu, "outlook", email="carol@example.com")
    assert [r["outcome"] for r in sync(carol.user_id)["runs"]] == ["ok"]
    got = scrape(metrics_url)
    assert got.by("autosync_conflicts_total", "provider", "winner") == {("google", "app"): 1}
    assert got.value("autosync_skipped_items_total", provider="google") == 1
    outlook = got.by("autosync_provider_requests_total", "endpoint", "status", provider="outlook")
    names = {"outlook.token": "token", "graph.delta": "calendarView.delta", "graph.instances": "events.instances",
             "graph.events.get": "events.get"}
    assert outlook == _emulator_counts(emu, "outlook", names)
    assert ("calendarView.delta", "200") in outlook and not any(e == "other" for e, _ in outlook)


def test_limiter_waits_and_cooldowns_are_counted_by_scope(worker, db, emu, metrics_url) -> None:
    import redis as redis_lib

    from autosync import errors
    from autosync.providers.google import classify_api
    from autosync.providers.http import HttpEdge, Policy
    from autosync.ratelimit import Limit, RateLimiter
    from autosync.settings import get_settings

    settings = get_settings()
    limiter = RateLimiter(redis_lib.Redis.from_url(settings.redis))
    edge = HttpEdge(Policy(2, 3, 0, 0.1, 0.2), limiter)
    cal = link(db, emu, "google")
    url = f"{settings.google_api_url}/calendars/{cal.ext_calendar_id}/events"
    account = [Limit("google:app", 1000, 60), Limit(f"google:acct:{cal.account_id}", 1, 60)]
    cooldowns = ["google:app", f"google:acct:{cal.account_id}"]
    with pytest.raises(errors.AuthInvalid):  # no token: a 401, which spends the account's one request a minute
        edge.send("GET", url, classify=classify_api, limits=account, cooldowns=cooldowns)
    with pytest.raises(errors.RateLimited):  # held by the account limit, not sent
        edge.send("GET", url, classify=classify_api, limits=account, cooldowns=cooldowns)
    limiter.cool_down(f"google:acct:{cal.account_id}", 30)  # as after a 429 with Retry-After: 30
    with pytest.raises(errors.RateLimited):
        edge.send("GET", url, classify=classify_api, limits=[], cooldowns=cooldowns)
    got = scrape(metrics_url)
    assert got.by("autosync_rate_limit_waits_total", "provider", "scope") == {("google", "account"): 1,
                                                                              ("google", "cooldown"): 1}
    assert got.value("autosync_cooldowns_active", provider="google") == 1
    assert got.value("autosync_cooldowns_active", provider="outlook") == 0


def test_beat_fan_out_sets_its_timestamp(worker, db, emu, metrics_url) -> None:
    from autosync.tasks import fan_out

    cal = link(db, emu, "google")
    assert "autosync_fan_out_last_timestamp_seconds" not in scrape(metrics_url).names()
    started = time.time()
    assert fan_out.apply(args=([1, 2],)).get() == 1
    got = scrape(metrics_url)
    assert started <= got.value("autosync_fan_out_last_timestamp_seconds") <= time.time()
    assert got.value("autosync_fan_outs_total") == 1 and got.value("autosync_fan_out_runs_total") == 1
    deadline = time.monotonic() + 20
    while db.execute('SELECT count(*) FROM sync_run WHERE "finishedAt" IS NULL').fetchone()[0]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert scrape(metrics_url).by("autosync_runs_total", "provider", "outcome") == {("google", "ok"): 1}
    assert db.execute('SELECT count(*) FROM sync_run WHERE "calendarId" = %s', (cal.calendar_id,)).fetchone()[0] == 1


def test_a_metrics_redis_that_does_not_answer_never_fails_a_sync(worker, db, emu, metrics_url) -> None:
    import redis as redis_lib

    from autosync import metrics
    from autosync.settings import get_settings

    cal = link(db, emu, "google")
    emu.google_insert(cal.ext_calendar_id, _timed("Standup", 1, 9))
    saved = metrics._client
    # Only the metrics client loses Redis (the limiter and the broker keep theirs): nothing may fail.
    metrics._client = (id(get_settings()), redis_lib.Redis.from_url("redis://127.0.0.1:1/0", socket_timeout=0.2,
                                                                   socket_connect_timeout=0.2))
    try:
        runs = sync(cal.user_id)["runs"]
    finally:
        metrics._client, metrics._quiet_until = saved, 0.0
    assert [r["outcome"] for r in runs] == ["ok"] and runs[0]["eventsUpserted"] == 1
    assert scrape(metrics_url).total("autosync_runs_total") == 0  # nothing recorded, nothing broken


def test_the_scrape_says_when_redis_is_down_and_still_serves_the_database_series(worker, db, emu) -> None:
    import os

    env = dict(os.environ, AUTOSYNC_REDIS_URL="redis://127.0.0.1:1/0")
    with metrics_process(env) as url:
        got = scrape(url)
    assert got.value("autosync_metrics_source_up", source="redis") == 0
    assert got.value("autosync_metrics_source_up", source="postgresql") == 1
    assert "autosync_calendars" in got.names() and "autosync_runs_total" not in got.names()

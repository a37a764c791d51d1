"""Defects the fault campaigns (bench/faults, issue 14) found, each pinned by the real thing: PostgreSQL
connections really terminated, Redis really refusing, the broker really unreachable."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest

from autosync.services.context import context
from autosync.services.runs import open_runs
from autosync.store import tokens as token_sql
from autosync.store.db import transaction
from autosync.store.runs import run_context
from tests.e2e.helpers import link


def _terminate_pool_connections(database_url: str, after: float) -> threading.Thread:
    """In ``after`` seconds, terminate every other session on the test database (as a PostgreSQL
    restart does to the pooled connections)."""

    def kill() -> None:
        time.sleep(after)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = current_database() AND pid <> pg_backend_pid()")

    thread = threading.Thread(target=kill)
    thread.start()
    return thread


def _run_ctx(calendar_id: int, kind: int) -> dict[str, Any]:
    steps, _ = open_runs(context(), [kind], reason="adhoc", calendar_id=calendar_id)
    with transaction() as conn:
        ctx = run_context(conn, steps[0].run_id)
    assert ctx is not None
    return ctx


def test_a_refreshed_token_is_saved_even_when_postgresql_drops_during_the_token_call(
        database_url, db, emu, emulator, limits_redis) -> None:
    from autosync.services.tokens import ensure_token

    cal = link(db, emu, "outlook")  # Microsoft rotates the refresh token at every refresh
    ctx = _run_ctx(cal.calendar_id, 2)
    emu.set_latency(1500, kind="oauth")
    killer = _terminate_pool_connections(database_url, after=0.5)
    try:
        ref = ensure_token(context(), ctx)
    finally:
        killer.join()
        emu.clear_latency()
    assert ref.access_token
    with transaction() as conn:
        stored = token_sql.read_token(conn, cal.calendar_id)
    # The rotated refresh token was kept: the old one is spent, the stored one still works.
    assert stored["refreshToken"] != cal.refresh_token
    assert stored["refreshToken"] in emulator.oauth.refresh_tokens_of(cal.account_id)


def test_a_push_is_not_marked_failed_when_our_own_redis_is_away(worker, db, emu) -> None:
    import pytest
    import redis

    from autosync.embedded import free_port
    from autosync.providers.google import GoogleProvider
    from autosync.providers.http import HttpEdge, Policy
    from autosync.providers.outlook import OutlookProvider
    from autosync.ratelimit import RateLimiter
    from autosync.services.context import App
    from autosync.services.syncback import push_step
    from autosync.settings import get_settings
    from autosync.store.pg import PgStore
    from tests.e2e.helpers import sync
    from tests.e2e.test_pushback_google import app_insert, at

    cal = link(db, emu, "google")
    sync(cal.user_id)
    event_id = app_insert(db, cal, "Dentist", at(3, 9), at(3, 10))
    # A context whose Redis refuses connections, as during a Valkey restart.
    s = get_settings()
    dead = RateLimiter(redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}", socket_connect_timeout=0.5))
    edge = HttpEdge(Policy(s.http_connect_timeout, s.http_read_timeout, s.http_retries, s.http_backoff_cap,
                           s.max_inline_wait), dead)
    away = App(s, dead, GoogleProvider(s, edge), OutlookProvider(s, edge), PgStore())
    steps, _ = open_runs(context(), [1], reason="adhoc", calendar_id=cal.calendar_id)
    with pytest.raises(redis.RedisError):  # the step is retried by the task's policy
        push_step(away, steps[0].run_id)
    entry = db.execute('SELECT "doneAt", outcome FROM event_outbox WHERE "eventId" = %s', (event_id,)).fetchone()
    assert entry == (None, None)  # still pending: a later attempt pushes it


def test_a_step_whose_next_step_cannot_be_queued_is_left_for_the_stale_run_sweep(db, emu, limits_redis) -> None:
    import os
    import subprocess
    import sys

    from autosync.embedded import free_port
    from autosync.services.runs import resume_stale
    from tests.e2e.procs import ROOT

    cal = link(db, emu, "google")
    steps, _ = open_runs(context(), [1], reason="adhoc", calendar_id=cal.calendar_id)
    (step,) = steps
    assert step.step == "token"
    # The step runs in a process of its own whose broker refuses connections (a Valkey restart).
    env = {**os.environ, "AUTOSYNC_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"}
    done = subprocess.run([sys.executable, "-c", "import sys; from autosync.tasks import refresh_token, run_step; "
                           "from autosync.services.pull import token_step; "
                           "run_step(refresh_token, token_step, int(sys.argv[1]))", str(step.run_id)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]  # the token step itself succeeded
    run = db.execute('SELECT "finishedAt", outcome, step FROM sync_run WHERE "runId" = %s', (step.run_id,)).fetchone()
    assert run == (None, None, "fetch")  # open, at its next step: not failed, not lost
    db.execute('UPDATE sync_run SET "heartbeatAt" = now() - interval \'1 hour\' WHERE "runId" = %s', (step.run_id,))
    resumed = resume_stale(context())
    assert [(s.run_id, s.step) for s in resumed] == [(step.run_id, "fetch")]


def test_the_stale_run_sweep_runs_often_enough_for_the_configured_staleness() -> None:
    import subprocess
    import sys

    from tests.e2e.procs import ROOT

    def sweep_every(stale_after: str) -> float:
        done = subprocess.run([sys.executable, "-c", "import celeryconfig as c; "
                               "print(c.beat_schedule['resume-stale-runs']['schedule'])"], cwd=ROOT, check=True,
                              capture_output=True, text=True,
                              env={**__import__("os").environ, "AUTOSYNC_RUN_STALE_AFTER": stale_after})
        return float(done.stdout.strip())

    # A run is resumed at most half a staleness period after it became stale (never more than a minute).
    assert sweep_every("10") <= 5
    assert sweep_every("900") == 60


def _first_attempt_then_user_edit(emu: Any, provider: str, cal: Any, event_id: int) -> str:
    """What a create whose answer was lost leaves behind: the event the first attempt made (under the
    create's idempotency key), which the user then renamed at the provider."""
    from urllib.parse import quote

    from autosync.providers.keys import google_event_id, transaction_id
    from tests.e2e.test_pushback_google import at

    if provider == "google":
        ext = google_event_id(cal.calendar_id, event_id)
        emu.google_insert(cal.ext_calendar_id, {"id": ext, "summary": "Dentist", "start": {
            "dateTime": at(3, 9).isoformat()}, "end": {"dateTime": at(3, 10).isoformat()}})
        emu.google_patch(cal.ext_calendar_id, ext, {"summary": "Dentist (moved to Friday)"})
        return ext
    made = emu.outlook("POST", f"/calendars/{quote(cal.ext_calendar_id, safe='')}/events", {
        "subject": "Dentist", "transactionId": transaction_id(cal.calendar_id, event_id, None),
        "start": {"dateTime": at(3, 9).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
        "end": {"dateTime": at(3, 10).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}})
    emu.outlook("PATCH", f"/events/{quote(made['id'], safe='')}", {"subject": "Dentist (moved to Friday)"})
    return str(made["id"])



@pytest.mark.parametrize("provider", ["google", "outlook"])
def test_a_retried_create_takes_the_edit_made_at_the_provider_since_its_first_attempt(
        worker, db, emu, provider) -> None:
    from tests.e2e.helpers import events, sync
    from tests.e2e.test_pushback_google import app_insert, at

    cal = link(db, emu, provider)
    sync(cal.user_id)
    event_id = app_insert(db, cal, "Dentist", at(3, 9), at(3, 10))
    ext = _first_attempt_then_user_edit(emu, provider, cal, event_id)
    sync(cal.user_id)  # the retried create gets the first attempt's (renamed) event back
    sync(cal.user_id)
    rows = events(db, cal.calendar_id)
    assert list(rows) == [ext]  # one row, one provider event
    assert rows[ext]["eventName"] == "Dentist (moved to Friday)"  # not stuck on the old name for good

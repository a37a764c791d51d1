"""What a step's task reports to Celery's event stream (what Flower shows), read by a real event receiver."""

from __future__ import annotations

import time

from tests.e2e.events import celery_events
from tests.e2e.helpers import link, run_rows, sync


def _finished_run(db, calendar_id: int, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = run_rows(db, calendar_id)
        if runs and runs[-1]["finishedAt"] is not None:
            return runs[-1]
        time.sleep(0.05)
    raise AssertionError(run_rows(db, calendar_id))


def test_a_good_run_succeeds_and_a_revoked_grant_fails_its_token_step_in_the_event_stream(worker, db, emu) -> None:
    from autosync.celery import app

    good = link(db, emu, "google", "good@example.com")
    revoked = link(db, emu, "outlook", "revoked@example.com")
    emu.revoke(revoked.account_id)
    with celery_events(app) as events:
        sync(good.user_id)
        sync(revoked.user_id)
        ok, reauth = run_rows(db, good.calendar_id)[-1], run_rows(db, revoked.calendar_id)[-1]
        assert ok["outcome"] == "ok" and reauth["outcome"] == "needs_reauth"
        ok_args = f"run={ok['runId']} calendar={good.calendar_id} provider=google"
        steps = {name: events.task_ids(f"autosync.{name}", ok_args) for name in ("refresh_token", "fetch_page")}
        assert all(len(ids) == 1 for ids in steps.values()), steps
        assert {name: events.final(ids[0]) for name, ids in steps.items()} == {
            "refresh_token": "task-succeeded", "fetch_page": "task-succeeded"}
        failed = events.task_ids("autosync.refresh_token",
                                 f"run={reauth['runId']} calendar={revoked.calendar_id} provider=outlook")
        assert len(failed) == 1 and events.final(failed[0]) == "task-failed"
        report = next(e for e in events.of(failed[0]) if e["type"] == "task-failed")
        assert "StepFailed" in report["exception"] and "needs_reauth" in report["exception"]
        assert revoked.refresh_token not in str(events.of(failed[0]))
        time.sleep(0.5)
        # Nothing followed the failed step, and it was not retried.
        assert sorted(e["type"] for e in events.of(failed[0])) == ["task-failed", "task-received", "task-sent",
                                                                    "task-started"]
        later = [e for e in events.events if e["type"] == "task-received"
                 and str(e.get("args", "")).startswith(f"run={reauth['runId']} ")]
        assert len(later) == 1


def test_a_step_whose_calendar_was_switched_off_mid_run_fails_its_task(worker, db, emu) -> None:
    from autosync.celery import app
    from autosync.services import runs
    from autosync.services.context import context
    from autosync.tasks import enqueue

    cal = link(db, emu, "google")
    [step], _ = runs.open_runs(context(), [1], reason="adhoc", calendar_id=cal.calendar_id)
    db.execute('UPDATE calendar SET status = false WHERE "calendarId" = %s', (cal.calendar_id,))  # the user unlinks
    with celery_events(app) as events:
        enqueue(step)
        run = _finished_run(db, cal.calendar_id)
        assert run["outcome"] == "failed" and "calendar is not active" in run["error"]
        [task] = events.task_ids("autosync.refresh_token", f"run={run['runId']} calendar={cal.calendar_id} "
                                                           "provider=google")
        assert events.final(task) == "task-failed"
    assert emu.requests(provider="google")["total"] == 0

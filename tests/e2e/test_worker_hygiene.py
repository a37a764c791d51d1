"""Worker hygiene: a warm shutdown loses no run; a worker killed mid-run leaves a state the next one completes."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta

from celery import Celery

from tests.e2e.helpers import events, link, run_rows
from tests.e2e.procs import BIN, cli, ops_env, workers


def _seed(emu, cal_id: str, n: int = 3) -> None:
    day = datetime.now(UTC).date()
    for i in range(n):
        d = (day + timedelta(days=1 + i)).isoformat()
        emu.google_insert(cal_id, {"summary": f"E{i}", "start": {"dateTime": f"{d}T09:00:00Z"},
                                   "end": {"dateTime": f"{d}T10:00:00Z"}})


def _wait_for_request(emu, endpoint: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if emu.requests(provider="google", endpoint=endpoint)["total"]:
            return
        time.sleep(0.05)
    raise AssertionError(f"no {endpoint} request")


def test_warm_shutdown_mid_run_loses_nothing(db, emu, limits_redis) -> None:
    cal = link(db, emu, "google")
    _seed(emu, cal.ext_calendar_id)
    # The list call hangs 2 s (under the 3 s read timeout): the worker is mid-task when TERM arrives.
    emu.add_fault(provider="google", endpoint="google.events.list", kind="slow", delay=2, count=1)
    env = ops_env()
    with workers(1, env) as procs:
        sync = subprocess.Popen([str(BIN / "autosync"), "sync", "--user", str(cal.user_id), "--wait", "60"], env=env,
                                stdout=subprocess.PIPE, text=True)
        _wait_for_request(emu, "google.token")
        time.sleep(0.3)
        procs[0].send_signal(signal.SIGTERM)  # warm shutdown: the running step finishes first
        procs[0].wait(30)
        with workers(1, env, fresh=False):
            out, _ = sync.communicate(timeout=90)
    summary = json.loads(out)
    assert [r["outcome"] for r in summary["runs"]] == ["ok"]
    assert len(events(db, cal.calendar_id, live_only=True)) == 3


def test_a_worker_killed_mid_run_leaves_a_run_the_next_worker_completes(db, emu, limits_redis) -> None:
    cal = link(db, emu, "google")
    _seed(emu, cal.ext_calendar_id)
    emu.add_fault(provider="google", endpoint="google.events.list", kind="slow", delay=2.5, count=1)
    env = ops_env(AUTOSYNC_RUN_STALE_AFTER="10")
    with workers(1, env) as procs:
        out = cli("sync", "--user", str(cal.user_id), env=env)
        assert out.returncode == 0
        _wait_for_request(emu, "google.token")
        time.sleep(0.5)
        procs[0].kill()  # SIGKILL mid-fetch: its unacked message stays in the broker's unacked set
        procs[0].wait(10)
    open_run = run_rows(db, cal.calendar_id)[-1]
    assert open_run["finishedAt"] is None  # left open, visibly, not lost
    db.execute('UPDATE sync_run SET "heartbeatAt" = now() - interval \'1 hour\' WHERE "runId" = %s',
               (open_run["runId"],))
    with workers(1, env, fresh=False):
        Celery(broker=env["AUTOSYNC_BROKER_URL"]).send_task("autosync.resume_stale", queue="autosync")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and run_rows(db, cal.calendar_id)[-1]["finishedAt"] is None:
            time.sleep(0.2)
    final = run_rows(db, cal.calendar_id)
    assert len(final) == 1 and final[0]["outcome"] == "ok"
    assert len(events(db, cal.calendar_id, live_only=True)) == 3


def test_soft_time_limit_ends_the_step_cleanly_and_the_retry_completes_the_run(db, emu, limits_redis) -> None:
    cal = link(db, emu, "google")
    _seed(emu, cal.ext_calendar_id)
    # The first listing takes 2.5 s; the soft limit is 1 s: the step is interrupted, recorded, retried.
    emu.add_fault(provider="google", endpoint="google.events.list", kind="slow", delay=2.5, count=1)
    env = ops_env(AUTOSYNC_TASK_SOFT_TIME_LIMIT="1", AUTOSYNC_TASK_TIME_LIMIT="4", AUTOSYNC_HTTP_READ_TIMEOUT="10")
    with workers(1, env, pool="prefork", concurrency=1):  # time limits need the prefork pool
        out = cli("sync", "--user", str(cal.user_id), "--wait", "60", env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    summary = json.loads(out.stdout)
    assert [r["outcome"] for r in summary["runs"]] == ["ok"]
    assert len(events(db, cal.calendar_id, live_only=True)) == 3
    assert len(emu.requests(provider="google", endpoint="google.events.list")["requests"]) == 2


def test_a_step_whose_worker_process_keeps_dying_is_given_up_instead_of_looping(db, emu, limits_redis) -> None:
    """What the hard time limit does (SIGKILL of the pool process), done here by hand: the broker
    redelivers the step each time; after AUTOSYNC_MAX_REDELIVERIES the run fails with the reason."""
    import os

    cal = link(db, emu, "google")
    _seed(emu, cal.ext_calendar_id)
    emu.add_fault(provider="google", endpoint="google.events.list", kind="slow", delay=30, count=10)
    env = ops_env(AUTOSYNC_MAX_REDELIVERIES="2", AUTOSYNC_HTTP_READ_TIMEOUT="60")
    inspect = Celery(broker=env["AUTOSYNC_BROKER_URL"]).control.inspect(timeout=0.5)
    killed: set[int] = set()
    with workers(1, env, pool="prefork", concurrency=1):
        assert cli("sync", "--user", str(cal.user_id), env=env).returncode == 0
        for attempt in range(1, 4):
            deadline = time.monotonic() + 30
            pid = None
            while pid is None:
                assert time.monotonic() < deadline, f"the step was not delivered again (attempt {attempt})"
                running = [t for tasks in (inspect.active() or {}).values() for t in tasks
                           if t["name"] == "autosync.fetch_page" and t["worker_pid"] not in killed]
                pid = running[0]["worker_pid"] if running else None
                time.sleep(0.1)
            time.sleep(0.3)  # inside the slow provider call
            os.kill(pid, signal.SIGKILL)  # the pool process dies mid-step, as under the hard time limit
            killed.add(pid)
        deadline = time.monotonic() + 30
        while run_rows(db, cal.calendar_id)[-1]["finishedAt"] is None:
            assert time.monotonic() < deadline, "the run was not given up"
            time.sleep(0.1)
    run = run_rows(db, cal.calendar_id)[-1]
    assert run["outcome"] == "failed" and "redelivered 3 times" in run["error"], run["error"]
    assert len(killed) == 3

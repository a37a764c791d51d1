"""Truthful monitoring: what Flower (task list and /metrics) shows for failed, retried and good runs."""

from __future__ import annotations

import re
import time
from collections import Counter
from typing import Any

import psycopg
import redis
import requests

from tests.e2e.helpers import link, run_rows
from tests.e2e.procs import cli, ops_env, start_flower, workers
from tests.e2e.test_ops import _insert_many

LIST = "google.events.list"


def _forbidden() -> dict[str, Any]:
    return {"error": {"errors": [{"domain": "global", "reason": "forbidden", "message": "Forbidden"}],
                      "code": 403, "message": "Forbidden"}}


def _finished(db: psycopg.Connection, calendar_ids: list[int], timeout: float = 60) -> dict[int, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        last = {c: run_rows(db, c)[-1] if run_rows(db, c) else None for c in calendar_ids}
        if all(r is not None and r["finishedAt"] is not None for r in last.values()):
            return last  # type: ignore[return-value]
        assert time.monotonic() < deadline, last
        time.sleep(0.2)


def _tasks_of(tasks: dict[str, Any], run_id: int) -> dict[str, list[dict[str, Any]]]:
    """Flower's tasks of one run, by task name; found by their readable arguments."""
    found: dict[str, list[dict[str, Any]]] = {}
    for t in tasks.values():
        if re.match(rf"run={run_id}\b", str(t.get("args"))):
            found.setdefault(t["name"], []).append(t)
    return found


def test_flower_shows_failed_runs_as_failures_good_ones_as_successes_with_readable_arguments(db, emu,
                                                                                           limits_redis) -> None:
    revoked = link(db, emu, "outlook", "revoked@example.com")
    forbidden = link(db, emu, "google", "forbidden@example.com")
    good = link(db, emu, "google", "good@example.com")
    _insert_many(emu, good.ext_calendar_id, 2)
    emu.revoke(revoked.account_id)
    emu.add_fault("status", provider="google", account=forbidden.account_id, endpoint=LIST, status=403, count=5,
                  body=_forbidden())
    # One 503 and no in-task retries: the good calendar's fetch goes back to Celery once, then succeeds.
    emu.add_fault("status", provider="google", account=good.account_id, endpoint=LIST, status=503, count=1)
    env = ops_env(FLOWER_UNAUTHENTICATED_API="true", AUTOSYNC_HTTP_RETRIES="0")
    with workers(1, env):
        flower, base = start_flower(env)
        try:
            cli("sync", "--all", env=env)
            runs = _finished(db, [revoked.calendar_id, forbidden.calendar_id, good.calendar_id])
            assert runs[revoked.calendar_id]["outcome"] == "needs_reauth"
            assert runs[forbidden.calendar_id]["outcome"] == "failed"
            assert runs[good.calendar_id]["outcome"] == "ok"
            settled = ("SUCCESS", "FAILURE")
            for _ in range(100):
                tasks = requests.get(f"{base}/api/tasks", timeout=5).json()
                by_run = {c: _tasks_of(tasks, r["runId"]) for c, r in runs.items()}
                if all(t["state"] in settled for found in by_run.values() for ts in found.values() for t in ts) \
                        and "autosync.fetch_page" in by_run[good.calendar_id]:
                    break
                time.sleep(0.2)
            time.sleep(1.0)  # let any stray redelivery or follow-up step show up before judging
            tasks = requests.get(f"{base}/api/tasks", timeout=5).json()
            metrics = requests.get(f"{base}/metrics", timeout=5).text
            unacked = redis.Redis.from_url(env["AUTOSYNC_BROKER_URL"]).hlen("unacked")
        finally:
            flower.terminate()
            flower.wait(10)

    def states(calendar_id: int) -> dict[str, list[str]]:
        found = _tasks_of(tasks, runs[calendar_id]["runId"])
        return {name: [t["state"] for t in ts] for name, ts in found.items()}

    # needs_reauth at the token step: one FAILURE, no retry, and the chain stopped there.
    assert states(revoked.calendar_id) == {"autosync.refresh_token": ["FAILURE"]}
    failed = _tasks_of(tasks, runs[revoked.calendar_id]["runId"])["autosync.refresh_token"][0]
    assert "needs_reauth" in failed["exception"] and "invalid_grant" in failed["exception"]
    assert failed["args"] == f"run={runs[revoked.calendar_id]['runId']} calendar={revoked.calendar_id} provider=outlook"
    # failed at the fetch: the token step succeeded, the fetch is a FAILURE, nothing was imported.
    assert states(forbidden.calendar_id) == {"autosync.refresh_token": ["SUCCESS"], "autosync.fetch_page": ["FAILURE"]}
    assert "403" in _tasks_of(tasks, runs[forbidden.calendar_id]["runId"])["autosync.fetch_page"][0]["exception"]
    # The good run: every step a SUCCESS, its retried fetch included, and still readable after the retry.
    good_states = states(good.calendar_id)
    assert good_states["autosync.refresh_token"] == ["SUCCESS"] and good_states["autosync.fetch_page"] == ["SUCCESS"]
    # A first sync is a full listing, fetched and imported in the fetch step itself (no import_page).
    assert "autosync.import_page" not in good_states
    fetch = _tasks_of(tasks, runs[good.calendar_id]["runId"])["autosync.fetch_page"][0]
    assert fetch["args"] == f"run={runs[good.calendar_id]['runId']} calendar={good.calendar_id} provider=google"
    # Each failure was reported once (no retry, no redelivery), and every message was acknowledged.
    assert len(emu.requests(provider="outlook", endpoint="outlook.token")["requests"]) == 1
    assert len(emu.requests(provider="google", account=forbidden.account_id, endpoint=LIST)["requests"]) == 1
    assert unacked == 0
    events: Counter[tuple[str, str]] = Counter()
    for line in metrics.splitlines():
        found = re.match(r'flower_events_total\{(.*)\} (\S+)', line)
        if found:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', found.group(1)))
            events[(labels["task"], labels["type"])] += int(float(found.group(2)))
    assert events[("autosync.refresh_token", "task-failed")] == 1
    assert events[("autosync.fetch_page", "task-failed")] == 1
    assert events[("autosync.fetch_page", "task-retried")] == 1
    assert events[("autosync.fetch_page", "task-succeeded")] >= 1
    # Never a secret in what Flower shows.
    shown = str(tasks)
    for secret in (revoked.refresh_token, forbidden.refresh_token, good.refresh_token, "google-secret",
                   "outlook-secret"):
        assert secret not in shown

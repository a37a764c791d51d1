"""One measured sync cycle: trigger it, wait until every calendar is done, collect every counter."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import psycopg

from autosync.emulator.client import EmulatorClient
from bench.harness import delta, worker_totals

PROGRESS = (
    'SELECT count(*) AS total, count(*) FILTER (WHERE "finishedAt" IS NULL) AS open, '
    'extract(epoch FROM max("finishedAt")) AS last, '
    'coalesce(sum("eventsUpserted" + "eventsUnchanged"), 0) AS events, '
    'coalesce(sum("providerRequests"), 0) AS requests FROM sync_run WHERE "runId" > %s'
)
OUTCOMES = 'SELECT outcome, count(*) FROM sync_run WHERE "runId" > %s GROUP BY 1'


def _last_run(conn: psycopg.Connection) -> int:
    row = conn.execute('SELECT coalesce(max("runId"), 0) FROM sync_run').fetchone()
    return int(row[0]) if row else 0


def product_cycle(db_url: str, emu: EmulatorClient, calendars: int, calendar_type: int,
                  unchanged: set[str] | None = None, timeout: float = 900) -> dict[str, Any]:
    """Send autosync.fan_out and wait for every run; ``unchanged``: ext ids expected to cost 1 request."""
    from autosync.celery import app

    with psycopg.connect(db_url, autocommit=True) as conn:
        since = _last_run(conn)
        emu.clear_requests()
        before = worker_totals(settle=0)
        started = time.time()
        app.send_task("autosync.fan_out", args=([calendar_type],), queue="autosync")
        deadline = time.monotonic() + timeout
        while True:
            row = conn.execute(PROGRESS, (since,)).fetchone()
            assert row is not None
            total, open_, last, events, run_requests = row
            if total >= calendars and open_ == 0:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"cycle not done: {total - open_}/{calendars} runs finished")
            time.sleep(0.1)
        outcomes: dict[str, int] = dict(conn.execute(OUTCOMES, (since,)).fetchall())
    after = worker_totals()
    wall = float(last) - started
    return _figures(wall, calendars, after, before, emu, calendar_type, unchanged) | {
        "outcomes": outcomes, "events_transferred": int(events), "requests_recorded_by_runs": int(run_requests)}


def baseline_cycle(emu: EmulatorClient, calendars: int, calendar_type: int, timeout: float = 900) -> dict[str, Any]:
    """Send bench.baseline_fan_out and wait until a baseline task finished for every calendar."""
    from autosync.celery import app
    from bench.baseline import FAN_OUT, GOOGLE, OUTLOOK

    name = GOOGLE if calendar_type == 1 else OUTLOOK
    emu.clear_requests()
    before = worker_totals(settle=0)
    started = time.time()
    app.send_task(FAN_OUT, args=([calendar_type],), queue="autosync")
    deadline = time.monotonic() + timeout
    while True:
        now = delta(worker_totals(settle=0), before)
        done = now.get(f"task.ok:{name}", 0)
        failed = now.get(f"task.failed:{name}", 0)
        if failed:
            raise RuntimeError(f"{int(failed)} baseline tasks failed")
        if done >= calendars:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"baseline not done: {done}/{calendars}")
        time.sleep(0.1)
    after = worker_totals()
    wall = after[f"last.{name}"] - started
    figures = _figures(wall, calendars, after, before, emu, calendar_type, None)
    figures["events_transferred"] = int(after.get("baseline.items", 0) - before.get("baseline.items", 0))
    if calendar_type == 2:
        figures["series_masters"] = int(after.get("baseline.series_masters", 0)
                                        - before.get("baseline.series_masters", 0))
    return figures


def _figures(wall: float, calendars: int, after: dict[str, float], before: dict[str, float],
             emu: EmulatorClient, calendar_type: int, unchanged: set[str] | None) -> dict[str, Any]:
    d = delta(after, before)
    log = emu.requests(provider="google" if calendar_type == 1 else "outlook")
    per_calendar = Counter(r["calendar"] for r in log["requests"] if r["calendar"])
    tasks = {k.split(":", 1)[1]: int(v) for k, v in d.items() if k.startswith("task.ok:") and v}
    out: dict[str, Any] = {
        "calendars": calendars,
        "wall_s": round(wall, 3),
        "calendars_per_s": round(calendars / wall, 1),
        "requests": log["total"],
        "requests_per_calendar": round(log["total"] / calendars, 3),
        "requests_by_endpoint": log["by_endpoint"],
        "tasks": tasks,
        "tasks_per_calendar": round(sum(tasks.values()) / calendars, 3),
        "retries": {k.split(":", 1)[1]: int(v) for k, v in d.items() if k.startswith("task.retry:") and v},
        "sql_statements": int(d.get("sql.statements", 0)),
        "sql_statements_per_calendar": round(d.get("sql.statements", 0) / calendars, 2),
        "sql_transactions_per_calendar": round(d.get("sql.transactions", 0) / calendars, 2),
        "broker_messages": int(d.get("msg.count", 0)),
    }
    if unchanged is not None:
        costs = Counter(per_calendar.get(cal, 0) for cal in unchanged)
        out["unchanged_calendar_requests"] = {str(k): v for k, v in sorted(costs.items())}
        out["unchanged_exactly_one"] = set(costs) == {1}
    return out


def push_cycle(db_url: str, emu: EmulatorClient, calendars: int, calendar_type: int, change: Any,
               timeout: float = 900) -> dict[str, Any]:
    """A cycle with change notifications on: the beat fan-out and the person edits start together.

    ``change()`` makes the edits (through the emulator admin API, as a person would) and returns the
    changed calendars' ext ids; the emulator notifies `autosync webhooks`, which queues their runs.
    The clock runs from before the fan-out and the edits until the fan-out task and every run that
    they started have finished; the time spent making the edits counts against autosync.
    """
    from autosync.celery import app

    with psycopg.connect(db_url, autocommit=True) as conn:
        since = _last_run(conn)
        emu.clear_requests()
        emu.clear_push_deliveries()
        before = worker_totals(settle=0)
        started = time.time()
        app.send_task("autosync.fan_out", args=([calendar_type],), queue="autosync")
        changed: list[str] = change()
        edits_done = time.time()
        deadline = time.monotonic() + timeout
        while True:
            row = conn.execute(PROGRESS, (since,)).fetchone()
            assert row is not None
            total, open_, last, events, run_requests = row
            fanned = delta(worker_totals(settle=0), before).get("task.ok:autosync.fan_out", 0)
            if total >= len(changed) and open_ == 0 and fanned >= 1:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"push cycle not done: {total - open_}/{len(changed)} runs finished")
            time.sleep(0.05)
        outcomes: dict[str, int] = dict(conn.execute(OUTCOMES, (since,)).fetchall())
        reasons: dict[str, int] = dict(conn.execute(
            'SELECT reason, count(*) FROM sync_run WHERE "runId" > %s GROUP BY 1', (since,)).fetchall())
    after = worker_totals()
    wall = max(float(last or 0), after.get("last.autosync.fan_out", 0)) - started
    out = _figures(wall, calendars, after, before, emu, calendar_type, None)
    log = emu.requests(provider="google" if calendar_type == 1 else "outlook")
    per_calendar = Counter(r["calendar"] for r in log["requests"] if r["calendar"])
    unchanged = {r["calendar"] for r in log["requests"] if r["calendar"]} - set(changed)
    deliveries = emu.push_deliveries()
    out.update({"making_edits_s": round(edits_done - started, 3),
                "after_last_edit_s": round(max(float(last or 0), edits_done) - edits_done, 3),
                "notifications_received": sum(1 for d in deliveries if d["kind"] in ("exists", "change")),
                "notification_attempts_failed": sum(1 for d in deliveries if not 200 <= (d["status"] or 0) < 300),
                "outcomes": outcomes, "run_reasons": reasons, "events_transferred": int(events),
                "requests_recorded_by_runs": int(run_requests), "changed_calendars": len(changed),
                "unchanged_calendars_with_requests": len(unchanged),
                "requests_per_changed_calendar": round(sum(per_calendar[c] for c in changed) / max(1, len(changed)),
                                                       3)})
    return out

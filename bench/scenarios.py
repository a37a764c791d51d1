"""The benchmark scenarios: steady state vs the seed-style baseline, one large calendar, Celery floor."""

from __future__ import annotations

import time
from typing import Any

import psycopg

from autosync.emulator.client import EmulatorClient
from bench import importpath
from bench.cycles import baseline_cycle, product_cycle, push_cycle
from bench.harness import RssSampler, Services, delta, emulator, reset_state, webhooks, worker_totals, workers
from bench.workload import change_some, link_all, many_calendars, one_large_calendar


def noop_throughput(n: int, timeout: float = 600) -> dict[str, Any]:
    """``n`` no-op tasks published from a worker task onto the chain's queue; wall until the last ran."""
    from autosync.celery import app
    from bench.worker_app import NOOP, NOOP_FAN_OUT

    before = worker_totals(settle=0)
    started = time.time()
    app.send_task(NOOP_FAN_OUT, args=(n,), queue="autosync")
    deadline = time.monotonic() + timeout
    while delta(worker_totals(settle=0), before).get(f"task.ok:{NOOP}", 0) < n:
        if time.monotonic() > deadline:
            raise TimeoutError("no-op tasks did not finish")
        time.sleep(0.1)
    wall = worker_totals()[f"last.{NOOP}"] - started
    return {"tasks": n, "wall_s": round(wall, 3), "tasks_per_s": round(n / wall, 1),
            "ms_per_task": round(1000 * wall / n, 3)}


def steady(svc: Services, provider: str, n: int, *, pool: str, concurrency: int, per_account: int,
           events: tuple[int, int], share: float, unchanged_cycle: bool, with_baseline: bool,
           with_noop: bool) -> dict[str, Any]:
    """Initial sync of ``n`` calendars, then a steady cycle with ``share`` of them changed (+ baseline)."""
    reset_state(svc)
    t0 = time.monotonic()
    work, seed = many_calendars(provider, n, per_account=per_account, events=events)
    out: dict[str, Any] = {"provider": provider, "calendars": n, "calendars_per_account": per_account,
                           "events_seeded": work.events, "changed_share": share}
    with emulator(svc, seed) as admin, workers(svc, pool=pool, concurrency=concurrency):
        out["setup_s"] = round(time.monotonic() - t0, 1)
        emu = EmulatorClient(admin)
        every = {c[3] for c in work.calendars}
        link_all(svc.db_url, work)
        out["initial_sync"] = product_cycle(svc.db_url, emu, n, work.calendar_type)
        if unchanged_cycle:
            out["unchanged_cycle"] = product_cycle(svc.db_url, emu, n, work.calendar_type, unchanged=every)
        if with_noop:
            out["noop"] = noop_throughput(n)
        changed = change_some(emu, work, share, cycle=1)
        out["steady_cycle"] = product_cycle(svc.db_url, emu, n, work.calendar_type, unchanged=every - set(changed))
        if with_baseline:
            change_some(emu, work, share, cycle=2)
            out["baseline_cycle"] = baseline_cycle(emu, n, work.calendar_type)
    _ratios(out)
    return out


def steady_push(svc: Services, provider: str, n: int, *, pool: str, concurrency: int, per_account: int,
                events: tuple[int, int], share: float) -> dict[str, Any]:
    """The steady cycle with change notifications on (`autosync webhooks` + AUTOSYNC_WEBHOOK_URL), and
    the seed-style baseline on the same data in the same run."""
    reset_state(svc)
    t0 = time.monotonic()
    work, seed = many_calendars(provider, n, per_account=per_account, events=events)
    out: dict[str, Any] = {"provider": provider, "calendars": n, "calendars_per_account": per_account,
                           "events_seeded": work.events, "changed_share": share, "notifications": True}
    with webhooks(svc) as hook_url, emulator(svc, seed) as admin, \
            workers(svc, pool=pool, concurrency=concurrency, extra_env={"AUTOSYNC_WEBHOOK_URL": hook_url + "/hooks"}):
        out["setup_s"] = round(time.monotonic() - t0, 1)
        emu = EmulatorClient(admin)
        link_all(svc.db_url, work)
        out["initial_sync"] = product_cycle(svc.db_url, emu, n, work.calendar_type)
        emu.wait_push_idle(timeout=300)
        with psycopg.connect(svc.db_url) as conn:
            row = conn.execute('SELECT count(*) FILTER (WHERE "stoppedAt" IS NULL), count(DISTINCT "channelId") '
                               "FROM push_channel").fetchone()
        out["channels_live"] = int(row[0]) if row else 0
        out["quiet_cycle"] = push_cycle(svc.db_url, emu, n, work.calendar_type, change=lambda: [])
        out["steady_cycle"] = push_cycle(svc.db_url, emu, n, work.calendar_type,
                                         change=lambda: change_some(emu, work, share, cycle=1))
        emu.wait_push_idle(timeout=60)
        change_some(emu, work, share, cycle=2)
        out["baseline_cycle"] = baseline_cycle(emu, n, work.calendar_type)
    _ratios(out)
    return out


def _ratios(out: dict[str, Any]) -> None:
    steady_, base, noop = out["steady_cycle"], out.get("baseline_cycle"), out.get("noop")
    if base:
        out["speedup_vs_baseline"] = round(base["wall_s"] / steady_["wall_s"], 2)
        out["fewer_requests_vs_baseline"] = round(base["requests"] / max(1, steady_["requests"]), 2)
        out["fewer_statements_vs_baseline"] = round(base["sql_statements"] / max(1, steady_["sql_statements"]), 2)
        out["fewer_events_transferred_vs_baseline"] = round(
            base["events_transferred"] / max(1, steady_["events_transferred"]), 1)
    if noop:
        per_task = noop["wall_s"] / noop["tasks"]
        out["chain_overhead_vs_noop"] = round(steady_["wall_s"] / steady_["calendars"] / per_task, 2)
        if "unchanged_cycle" in out:
            cycle = out["unchanged_cycle"]
            out["unchanged_chain_overhead_vs_noop"] = round(cycle["wall_s"] / cycle["calendars"] / per_task, 2)


def large(svc: Services, provider: str, n: int, *, pool: str, concurrency: int) -> dict[str, Any]:
    """Initial sync of one calendar with about ``n`` events: wall, events/s, peak worker RSS, message size.

    Events/s counts the cal_event rows written: for Outlook, the plain occurrences a delta round also
    lists are not rows (a series is stored as its master and its exceptions)."""
    reset_state(svc)
    work, seed = one_large_calendar(provider, n)
    out: dict[str, Any] = {"provider": provider, "events_requested": n, "events_seeded": work.events}
    with emulator(svc, seed) as admin, workers(svc, pool=pool, concurrency=concurrency) as procs:
        emu = EmulatorClient(admin)
        link_all(svc.db_url, work)
        pids = [p.pid for p in procs]
        with RssSampler(pids) as idle:
            time.sleep(0.5)
        with RssSampler(pids) as rss:
            cycle = product_cycle(svc.db_url, emu, 1, work.calendar_type)
        totals = worker_totals()
        with psycopg.connect(svc.db_url) as conn:
            row = conn.execute("SELECT count(*) FILTER (WHERE status), count(*), min(\"calendarId\") "
                               "FROM cal_event").fetchone()
    assert row is not None
    live, rows = int(row[0]), int(row[1])
    # What storing this calendar's own rows costs through the import path (the workers are idle now).
    out["own_rows_import"] = importpath.own_rows(provider, int(row[2]))
    out.update({
        "wall_s": cycle["wall_s"], "rows_imported": rows, "live_events": live,
        "events_per_s": round(rows / cycle["wall_s"], 1), "outcomes": cycle["outcomes"],
        "requests": cycle["requests"], "requests_by_endpoint": cycle["requests_by_endpoint"], "tasks": cycle["tasks"],
        "idle_rss_mb": round(idle.peak_process / 2**20, 1),
        "peak_rss_mb": round(rss.peak_process / 2**20, 1),
        "peak_rss_all_worker_processes_mb": round(rss.peak_total / 2**20, 1),
        "max_message_bytes": int(totals.get("msg.max_bytes", 0)),
        "max_message_task": max(((k.split(":", 1)[1], v) for k, v in totals.items()
                                 if k.startswith("msg.max_bytes:")), key=lambda kv: kv[1], default=("", 0))[0],
    })
    return out

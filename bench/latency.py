"""The worker under provider latency: the same cycles at 0 ms and at 150 ± 50 ms, same worker configuration.

Parts, each measured at both latencies on fresh state (a new database, emulator and workers per
latency), Google calendars, 5 per account, 5-15 events each:

- ``initial_sync``: every calendar linked and synced for the first time (token, fetch, import);
- ``steady_polled``: the beat's cycle with 1 % of the calendars changed (the common case);
- ``push``: the cycle with change notifications on and 1 % changed (after an initial sync that made
  the channels), measured as in the push scenario (edits and fan-out start together).

The emulator is started with ``autosync emulator --latency 150:50``, so every provider answer,
token endpoint included, takes 100-200 ms. Production rate limits are on; their own cost is the
0 ms steady cycle run once more with the limiter off on the same data (``limits_cost``). The
limiter's Redis keys are emptied before each measured cycle so no cycle inherits another's window.
"""

from __future__ import annotations

import time
from statistics import median
from typing import Any

import redis

from autosync.emulator.client import EmulatorClient
from bench.cycles import product_cycle, push_cycle
from bench.harness import (
    LIMITS_DB,
    RssSampler,
    Services,
    delta,
    emulator,
    reset_state,
    webhooks,
    worker_totals,
    workers,
)
from bench.workload import change_some, link_all, many_calendars

REALISTIC = "150:50"
PREFORK_CONCURRENCY = 4
# The defaults of autosync.settings: the benchmark's other parts turn them off.
PRODUCTION_LIMITS = {"AUTOSYNC_GOOGLE_RATE": "10000/60", "AUTOSYNC_GOOGLE_ACCOUNT_RATE": "600/60",
                     "AUTOSYNC_OUTLOOK_RATE": "2000/1", "AUTOSYNC_OUTLOOK_ACCOUNT_RATE": "10000/600",
                     "AUTOSYNC_OUTLOOK_MAILBOX_CONCURRENCY": "4"}
LIMITS_OFF = {"AUTOSYNC_GOOGLE_RATE": "0", "AUTOSYNC_GOOGLE_ACCOUNT_RATE": "0", "AUTOSYNC_OUTLOOK_RATE": "0",
              "AUTOSYNC_OUTLOOK_ACCOUNT_RATE": "0", "AUTOSYNC_OUTLOOK_MAILBOX_CONCURRENCY": "64"}


def _clear_limits(svc: Services) -> None:
    client = redis.Redis.from_url(f"{svc.redis}/{LIMITS_DB}")
    keys = list(client.scan_iter("autosync:*", count=1000))
    if keys:
        client.delete(*keys)


def _measured(svc: Services, pids: list[int], run: Any) -> dict[str, Any]:
    """One cycle with the worker processes' RSS and the PostgreSQL-pool / HTTP-pool counters."""
    _clear_limits(svc)
    before = worker_totals(settle=0.2)
    with RssSampler(pids) as rss:
        cycle: dict[str, Any] = run()
    d = delta(worker_totals(), before)
    cycle["peak_rss_mb"] = round(rss.peak_total / 2**20, 1)
    cycle["peak_rss_one_process_mb"] = round(rss.peak_process / 2**20, 1)
    cycle["db_pool"] = {"checkouts": int(d.get("pool.requests", 0)), "waited": int(d.get("pool.queued", 0)),
                        "wait_ms_total": int(d.get("pool.wait_ms", 0)), "timeouts": int(d.get("pool.timeouts", 0))}
    cycle["http_pool_full_discards"] = int(d.get("http.pool_full_discards", 0))
    return cycle


def polled(svc: Services, n: int, latency: str | None, *, pool: str, concurrency: int,
           processes: int, with_limits_off: bool) -> dict[str, Any]:
    """Initial sync, then the 1 % steady cycle (and, optionally, the same cycle with limits off)."""
    reset_state(svc)
    work, seed = many_calendars("google", n, per_account=5, events=(5, 15))
    every = {c[3] for c in work.calendars}
    out: dict[str, Any] = {}
    with emulator(svc, seed, latency) as admin:
        emu = EmulatorClient(admin)
        with workers(svc, pool=pool, concurrency=concurrency, count=processes, extra_env=PRODUCTION_LIMITS) as procs:
            pids = [p.pid for p in procs]
            link_all(svc.db_url, work)
            out["initial_sync"] = _measured(svc, pids, lambda: product_cycle(svc.db_url, emu, n, 1))
            changed = change_some(emu, work, 0.01, cycle=1)
            out["steady_polled"] = _measured(svc, pids, lambda: product_cycle(svc.db_url, emu, n, 1,
                                                                              unchanged=every - set(changed)))
        if with_limits_off:  # the same cycle on the same data, the limiter off: its own cost
            with workers(svc, pool=pool, concurrency=concurrency, count=processes, extra_env=LIMITS_OFF) as procs:
                product_cycle(svc.db_url, emu, n, 1)  # warm-up, unmeasured: the other workers were warm too
                again = change_some(emu, work, 0.01, cycle=2)
                out["steady_polled_limits_off"] = _measured(
                    svc, [p.pid for p in procs], lambda: product_cycle(svc.db_url, emu, n, 1,
                                                                       unchanged=every - set(again)))
    return out


def pushed(svc: Services, n: int, latency: str | None, *, pool: str, concurrency: int,
           processes: int) -> dict[str, Any]:
    """With change notifications on: an initial sync that makes the channels, then the 1 % push cycle."""
    reset_state(svc)
    work, seed = many_calendars("google", n, per_account=5, events=(5, 15))
    with webhooks(svc) as hook_url, emulator(svc, seed, latency) as admin, \
            workers(svc, pool=pool, concurrency=concurrency, count=processes,
                    extra_env={**PRODUCTION_LIMITS, "AUTOSYNC_WEBHOOK_URL": hook_url + "/hooks"}) as procs:
        emu = EmulatorClient(admin)
        link_all(svc.db_url, work)
        product_cycle(svc.db_url, emu, n, 1)
        emu.wait_push_idle(timeout=300)
        return _measured(svc, [p.pid for p in procs], lambda: push_cycle(
            svc.db_url, emu, n, 1, change=lambda: change_some(emu, work, 0.01, cycle=1)))


def run(svc: Services, n: int, *, pool: str, concurrency: int, processes: int) -> dict[str, Any]:
    """Every part at 0 ms and at 150 ± 50 ms; the results JSON's ``latency`` key."""
    started = time.monotonic()
    zero = polled(svc, n, None, pool=pool, concurrency=concurrency, processes=processes, with_limits_off=True)
    real = polled(svc, n, REALISTIC, pool=pool, concurrency=concurrency, processes=processes,
                  with_limits_off=False)
    zero["push"] = pushed(svc, n, None, pool=pool, concurrency=concurrency, processes=processes)
    real["push"] = pushed(svc, n, REALISTIC, pool=pool, concurrency=concurrency, processes=processes)
    # Today's production default before this change, on the same data and machine in the same run:
    # prefork (the bench's previous default of 4 processes), 0 ms, limits on.
    prefork = polled(svc, n, None, pool="prefork", concurrency=PREFORK_CONCURRENCY, processes=1,
                     with_limits_off=False)
    ms, _, jitter = REALISTIC.partition(":")
    out: dict[str, Any] = {"pool": pool, "processes": processes, "concurrency": concurrency,
                           "total_concurrency": processes * concurrency, "rate_limits": PRODUCTION_LIMITS}
    for part in ("steady_polled", "initial_sync", "push"):
        z, r = zero[part], real[part]
        out[part] = {
            "calendars": n, "latency_ms": float(ms), "jitter_ms": float(jitter),
            "cal_per_s": r["calendars_per_s"], "zero_latency_cal_per_s": z["calendars_per_s"],
            "ratio": round(r["calendars_per_s"] / z["calendars_per_s"], 3),
            "pool": pool, "concurrency": concurrency, "processes": processes,
            "peak_rss_mb": max(r["peak_rss_mb"], z["peak_rss_mb"]),
            "wall_s": r["wall_s"], "zero_latency_wall_s": z["wall_s"],
            "db_pool": {"at_latency": r["db_pool"], "at_zero": z["db_pool"]},
            "http_pool_full_discards": r["http_pool_full_discards"] + z["http_pool_full_discards"],
            "requests_per_calendar": r["requests_per_calendar"], "retries": r["retries"],
            "outcomes": r.get("outcomes"), "at_latency": r, "at_zero": z,
        }
    for part in ("steady_polled", "initial_sync"):
        out[part]["prefork_zero_latency_cal_per_s"] = prefork[part]["calendars_per_s"]
    out["prefork_zero_latency"] = {"pool": "prefork", "concurrency": PREFORK_CONCURRENCY, **prefork}
    off = zero["steady_polled_limits_off"]
    on = zero["steady_polled"]
    out["limits_cost"] = {"steady_polled_zero_latency_limits_on_cal_per_s": on["calendars_per_s"],
                          "steady_polled_zero_latency_limits_off_cal_per_s": off["calendars_per_s"],
                          "cost": round(1 - on["calendars_per_s"] / off["calendars_per_s"], 3),
                          "limits_off_cycle": off}
    out["total_s"] = round(time.monotonic() - started, 1)
    return out


def zero_latency_ab(svc: Services, n: int, *, pool: str, concurrency: int, processes: int,
                    rounds: int, prefork_concurrency: int = PREFORK_CONCURRENCY) -> dict[str, Any]:
    """The 0 ms comparison with prefork (x4 unless ``prefork_concurrency`` says), interleaved:
    ``rounds`` alternations of the two worker configurations (A = the I/O pool, B = prefork), each on
    fresh data with the same seed, so slow minutes of a noisy machine fall on both. Reports each round
    and the medians; the JSON's ``latency_ab`` key (``python -m bench.run --only latency --latency-ab N``)."""
    started = time.monotonic()
    # Unmeasured warm-up of both configurations: the first cycles after start-up ran 10-20 % slower
    # whichever configuration they used, so with an odd number of rounds the side that went first
    # more often lost by that alone (seen 2026-12-04: each side won every round it ran second in).
    for p, c, k in ((pool, concurrency, processes), ("prefork", prefork_concurrency, 1)):
        polled(svc, n, None, pool=p, concurrency=c, processes=k, with_limits_off=False)
    runs: list[dict[str, Any]] = []
    for i in range(rounds):
        order = [("a", pool, concurrency, processes), ("b", "prefork", prefork_concurrency, 1)]
        if i % 2:  # alternate which goes first, so neither always gets the warmer machine
            order.reverse()
        got = {}
        for label, p, c, k in order:
            cycle = polled(svc, n, None, pool=p, concurrency=c, processes=k, with_limits_off=False)
            got[label] = {part: cycle[part]["calendars_per_s"] for part in ("steady_polled", "initial_sync")}
        runs.append({"round": i + 1, "first": order[0][0], "io_pool": got["a"], "prefork": got["b"],
                     "ratio": {part: round(got["a"][part] / got["b"][part], 3) for part in got["a"]}})

    out: dict[str, Any] = {"calendars": n, "pool": pool, "concurrency": concurrency, "processes": processes,
                           "prefork_concurrency": prefork_concurrency, "rounds": runs}
    for part in ("steady_polled", "initial_sync"):
        out[part] = {"io_pool_median_cal_per_s": round(median([r["io_pool"][part] for r in runs]), 1),
                     "prefork_median_cal_per_s": round(median([r["prefork"][part] for r in runs]), 1),
                     "median_ratio": round(median([r["ratio"][part] for r in runs]), 3),
                     "rounds_io_pool_ahead": sum(1 for r in runs if r["ratio"][part] >= 1.0)}
    out["total_s"] = round(time.monotonic() - started, 1)
    return out

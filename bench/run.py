"""Entry point: ``python -m bench.run [--quick]`` runs every benchmark, prints a table, writes JSON."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import ROOT, Services, create_database, drop_database, redis_server

FULL = {"steady": [1000, 10000], "large": [10000, 50000], "outlook": [1000], "import": (10000, 5), "latency": 1000,
        "metrics": 100000}
QUICK = {"steady": [300, 1000], "large": [2000, 10000], "outlook": [200], "import": (5000, 3), "latency": 300,
         "metrics": 100000}


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    p.add_argument("--quick", action="store_true", help="smaller sizes (about 3 minutes)")
    p.add_argument("--pool", default="prefork", choices=["prefork", "threads", "solo"],
                   help="worker pool (default prefork)")
    p.add_argument("--concurrency", type=int, default=4, help="worker concurrency (default 4)")
    p.add_argument("--only", nargs="*", choices=["import", "steady", "large", "outlook", "push", "latency", "metrics"],
                   help="run only these parts")
    p.add_argument("--latency-pool", default="threads", choices=["threads", "gevent"],
                   help="the latency part's pool (default threads, as `autosync worker`)")
    p.add_argument("--latency-concurrency", type=int, help="steps per process (default: autosync's for the pool)")
    p.add_argument("--latency-processes", type=int, help="worker processes (default: autosync's, two per core)")
    p.add_argument("--latency-ab", type=int, metavar="ROUNDS",
                   help="instead of the latency part: ROUNDS interleaved 0 ms runs of the I/O pool and "
                        "prefork x4 after a warm-up of each (the 0 ms comparison, medians; use an even "
                        "number, so each side goes first as often)")
    p.add_argument("--latency-ab-prefork", type=int, default=4, metavar="N",
                   help="--latency-ab: the prefork side's concurrency (default 4, the bench's previous default; "
                        "2 was the Procfile's on this 2-core machine when issue 12 was filed)")
    p.add_argument("--latency-calendars", type=int, help="calendars (default 1000, quick 300)")
    p.add_argument("--large-sizes", type=int, nargs="+", help="the large part's calendar sizes (default 10000 50000, "
                   "quick 2000 10000)")
    p.add_argument("--large-providers", nargs="+", choices=["google", "outlook"], default=["google", "outlook"],
                   help="the large part's providers (default both)")
    p.add_argument("--out", type=Path, help="where to write the results JSON (default "
                   "bench/results/<date>[-parts][-quick].json, which replaces that day's file)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks against throwaway PostgreSQL / Redis state; always drops the database."""
    args = parse(argv)
    svc = Services()
    with redis_server(svc) as redis_url:
        svc.apply()  # before anything reads autosync's settings
        return _run(args, svc, redis_url)


def _run(args: argparse.Namespace, svc: Services, redis_url: str) -> int:
    sizes = QUICK if args.quick else FULL
    parts = set(args.only or ["import", "steady", "large", "outlook", "push", "latency", "metrics"])
    from bench import instrument, report, scenarios
    from bench.importpath import import_path

    instrument.patch_kombu()
    started = time.monotonic()
    version = code_version()
    res: dict[str, Any] = {"quick": args.quick, "pool": args.pool, "concurrency": args.concurrency,
                           "cpus": os.cpu_count(), "worker_processes": 1,
                           "redis": redis_url, "steady": [], "large": [], "only": args.only}
    kw = {"pool": args.pool, "concurrency": args.concurrency}
    create_database(svc)
    try:
        if "import" in parts or "large" in parts:  # the large calendars are rated against it
            _say("import path")
            res["import_path"] = import_path(*sizes["import"])
        if "steady" in parts:
            for i, n in enumerate(sizes["steady"]):
                _say(f"steady state, google, {n} calendars")
                res["steady"].append(scenarios.steady(
                    svc, "google", n, per_account=5, events=(5, 15), share=0.01, unchanged_cycle=i == 0,
                    with_baseline=True, with_noop=True, **kw))
        if "steady" in parts and not args.quick:
            # The same cycle on calendars of a realistic size: the seed-style baseline re-upserts every
            # event updated in the last four weeks, so its cost grows with the calendar; ours does not.
            _say("steady state, google, 1000 calendars of 40-80 events")
            res["steady"].append(scenarios.steady(
                svc, "google", 1000, per_account=5, events=(40, 80), share=0.01, unchanged_cycle=False,
                with_baseline=True, with_noop=False, **kw))
        if "outlook" in parts:
            for n in sizes["outlook"]:
                _say(f"steady state, outlook, {n} calendars")
                res["steady"].append(scenarios.steady(
                    svc, "outlook", n, per_account=5, events=(5, 15), share=0.01, unchanged_cycle=True,
                    with_baseline=True, with_noop=False, **kw))
        if "push" in parts:
            for n in sizes["steady"]:
                _say(f"steady state with change notifications, google, {n} calendars")
                res["steady"].append(scenarios.steady_push(
                    svc, "google", n, per_account=5, events=(5, 15), share=0.01, **kw))
            n = sizes["outlook"][0]
            _say(f"steady state with change notifications, outlook, {n} calendars")
            res["steady"].append(scenarios.steady_push(
                svc, "outlook", n, per_account=5, events=(5, 15), share=0.01, **kw))
        if "metrics" in parts:
            from bench.harness import reset_state
            from bench.metrics import record_cost, scrape_cost

            _say(f"metrics: scrape at {sizes['metrics']} calendars, recording cost")
            reset_state(svc)
            res["metrics"] = {"scrape": scrape_cost(svc.db_url, sizes["metrics"]), "record": record_cost()}
            reset_state(svc)
        if "latency" in parts:
            from autosync.workers import DEFAULT_CONCURRENCY, PROCESSES_PER_CORE, cores
            from bench import latency

            pool = args.latency_pool
            n = args.latency_calendars or sizes["latency"]
            per = args.latency_concurrency or DEFAULT_CONCURRENCY[pool]
            procs = args.latency_processes or PROCESSES_PER_CORE * cores()
            if args.latency_ab:
                _say(f"0 ms, {pool} {procs}x{per} against prefork x{args.latency_ab_prefork}, "
                     f"{args.latency_ab} interleaved rounds")
                res["latency_ab"] = latency.zero_latency_ab(svc, n, pool=pool, concurrency=per, processes=procs,
                                                            rounds=args.latency_ab,
                                                            prefork_concurrency=args.latency_ab_prefork)
            else:
                _say(f"under provider latency: google {n} calendars, 0 ms and 150 ± 50 ms, {pool}")
                res["latency"] = latency.run(svc, n, pool=pool, concurrency=per, processes=procs)
        if "large" in parts:
            for provider in args.large_providers:
                for n in args.large_sizes or sizes["large"]:
                    _say(f"one large {provider} calendar, ~{n} events")
                    res["large"].append(scenarios.large(svc, provider, n, **kw))
            report.import_path_ratios(res)
    finally:
        drop_database(svc)
        shutil.rmtree(svc.workdir, ignore_errors=True)
    res["bench_process_max_message_bytes"] = int(instrument.gauges.get("msg.max_bytes", 0))
    res["total_s"] = round(time.monotonic() - started, 1)
    res["code_at_start"], res["code_at_end"] = version, code_version()
    res["targets"] = report.targets(res)
    path = report.write(res, args.out)
    print(report.table(res))
    print(f"\nresults: {path}")
    return 0


def code_version() -> dict[str, Any]:
    """The commit measured, and whether autosync/ had uncommitted changes (others may edit it meanwhile)."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    return {"commit": git("rev-parse", "--short", "HEAD"),
            "autosync_dirty": bool(git("status", "--porcelain", "--", "autosync", "celeryconfig.py"))}


def _say(what: str) -> None:
    print(f"[bench] {what} ...", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())

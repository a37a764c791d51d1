"""`autosync worker`: the Celery workers of one host, sized for I/O-bound steps, under one supervisor.

A sync step spends most of its time waiting for Google or Microsoft (100-300 ms a request), so a
worker process runs many steps at once on an I/O pool (threads by default). One such process is
bound by the GIL at about one core of Python, and many threads in one process also contend for it,
so a host runs two processes per core of 16 steps each: together they wait on providers side by side
and use every core when answers come back fast. See BENCHMARKS.md
("Under provider latency") for the measurements behind the defaults.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from autosync.settings import Settings, get_settings, process_environment

QUEUES = "autosync,autosync.google,autosync.outlook"
# Steps in flight per process when AUTOSYNC_WORKER_CONCURRENCY is 0: with PROCESSES_PER_CORE, 32
# per core, enough to keep a core busy at ~150 ms per provider request (see BENCHMARKS.md); prefork
# runs one process per core instead. (gevent is measured by the benchmark when installed, but not
# offered: see BENCHMARKS.md.)
DEFAULT_CONCURRENCY = {"threads": 16, "gevent": 64}
# I/O-pool processes per core when AUTOSYNC_WORKER_PROCESSES is 0: two processes of 16 threads beat
# one of 32 at 0 ms (less GIL contention) and match it under latency (BENCHMARKS.md).
PROCESSES_PER_CORE = 2


@dataclass(frozen=True)
class Plan:
    """How many worker processes a host runs, with which pool and how many steps each."""

    processes: int
    pool: str
    concurrency: int


def cores() -> int:
    """CPUs this process may run on (the container's share when the scheduler limits it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def concurrency(settings: Settings, pool: str | None = None) -> int:
    """Steps one worker process runs at once: AUTOSYNC_WORKER_CONCURRENCY, else the pool's default."""
    pool = pool or settings.worker_pool
    if settings.worker_concurrency:
        return settings.worker_concurrency
    return cores() if pool == "prefork" else DEFAULT_CONCURRENCY[pool]


def plan(settings: Settings, *, processes: int | None = None, pool: str | None = None,
         per_process: int | None = None) -> Plan:
    """The host's workers: prefork is one Celery process (it forks its own children); an I/O pool is
    two processes per core unless AUTOSYNC_WORKER_PROCESSES (or ``processes``) says otherwise."""
    pool = pool or settings.worker_pool
    size = per_process or concurrency(settings, pool)
    if pool == "prefork":
        return Plan(1, pool, size)
    return Plan(processes or settings.worker_processes or PROCESSES_PER_CORE * cores(), pool, size)


def argv(p: Plan, index: int, *, name: str = "autosync", loglevel: str = "INFO",
         extra: list[str] | None = None) -> list[str]:
    """The command line of the ``index``-th (1-based) worker process of a plan."""
    return [sys.executable, "-m", "celery", "-A", "autosync", "worker", "-P", p.pool, "-c", str(p.concurrency),
            "-n", f"{name}{index}@%h", "-Q", QUEUES, "--loglevel", loglevel, *(extra or [])]


class Supervisor:
    """Runs the processes of a plan; a signal is passed on to all of them, and when one of them exits
    the others are stopped too, so the host's process manager sees one failed unit and restarts it."""

    def __init__(self, p: Plan, loglevel: str, extra: list[str]) -> None:
        self.plan = p
        self.loglevel = loglevel
        self.extra = extra
        self.procs: list[subprocess.Popen[bytes]] = []
        self.stopping = False

    def _forward(self, signum: int, _frame: Any) -> None:
        self.stopping = True
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signum)  # TERM: Celery's warm shutdown, running steps finish

    def run(self) -> int:
        """Start every process, wait until one exits or a signal comes, then stop the rest."""
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            signal.signal(sig, self._forward)
        p = self.plan
        print(f"autosync worker: {p.processes} x celery worker -P {p.pool} -c {p.concurrency} "
              f"({p.processes * p.concurrency} steps at once)", flush=True)
        # Own sessions: a Ctrl-C reaches the supervisor once, which passes it on once (a second
        # SIGINT would make Celery stop cold); the children die with the supervisor if it is killed.
        env = {**process_environment(), **child_environment(p)}
        self.procs = [subprocess.Popen(argv(p, i, loglevel=self.loglevel, extra=self.extra), env=env,
                                       start_new_session=True, preexec_fn=die_with_parent)
                      for i in range(1, p.processes + 1)]
        code = 0
        while not self.stopping:
            exited = [proc for proc in self.procs if proc.poll() is not None]
            if exited:
                code = exited[0].returncode or 1
                print(f"autosync worker: process {exited[0].pid} exited with {exited[0].returncode}; "
                      "stopping the others", file=sys.stderr, flush=True)
                self._forward(signal.SIGTERM, None)
                break
            time.sleep(0.5)
        for proc in self.procs:
            proc.wait()
        return code


def child_environment(p: Plan) -> dict[str, str]:
    """What a worker process of the plan must know of it (celeryconfig sizes the broker's producer
    pool from the concurrency)."""
    return {"AUTOSYNC_WORKER_POOL": p.pool, "AUTOSYNC_WORKER_CONCURRENCY": str(p.concurrency)}


def die_with_parent() -> None:
    """In a child before exec: receive SIGTERM when the parent dies (Linux prctl PR_SET_PDEATHSIG)."""
    import ctypes

    ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM, 0, 0, 0)


def main(args: argparse.Namespace) -> int:
    """Entry point of `autosync worker`."""
    settings = get_settings()
    p = plan(settings, processes=args.processes, pool=args.pool, per_process=args.concurrency)
    extra = list(args.celery_args or [])
    return Supervisor(p, args.loglevel, extra[1:] if extra[:1] == ["--"] else extra).run()


def add_parser(sub: Any) -> None:
    """`autosync worker` on the CLI's sub-command parser."""
    w = sub.add_parser("worker", help="run this host's Celery workers (two I/O pool processes per core)",
                       description="Run this host's workers: two Celery processes per core on the threads pool "
                                   "(AUTOSYNC_WORKER_POOL), each running AUTOSYNC_WORKER_CONCURRENCY steps, on "
                                   "every autosync queue. A signal reaches all of them; when one dies the others "
                                   "stop too, so the process manager restarts the unit.")
    w.add_argument("--processes", type=int, help="worker processes (default AUTOSYNC_WORKER_PROCESSES: two per core)")
    w.add_argument("--pool", choices=["threads", "prefork"], help="default AUTOSYNC_WORKER_POOL")
    w.add_argument("--concurrency", type=int, help="steps per process (default AUTOSYNC_WORKER_CONCURRENCY)")
    w.add_argument("--loglevel", default="INFO", help="Celery's log level (default INFO)")
    w.add_argument("celery_args", nargs=argparse.REMAINDER, help="after --: passed on to every `celery worker`")
    w.set_defaults(func=main)

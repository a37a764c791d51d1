"""The app benchmark workers run (``celery -A bench.worker_app worker``): autosync's app, unchanged,
plus a no-op task, the seed-style baseline tasks and in-process counters (see instrument.py).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from celery import Task
from celery.signals import (
    task_failure,
    task_retry,
    task_success,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from autosync.celery import app
from bench import instrument

NOOP = "bench.noop"
NOOP_FAN_OUT = "bench.noop_fan_out"
BENCH_QUEUE = os.environ.get("BENCH_QUEUE", "autosync.google")

instrument.patch_psycopg()
instrument.patch_kombu()


def _pool_stats() -> dict[str, float]:
    """The PostgreSQL pool's cumulative counters in this process: requests that had to wait for a
    connection, and how long they waited in total."""
    from autosync.store import db

    if db._pool is None or db._pool_pid != os.getpid():
        return {}
    stats = db._pool.get_stats()
    return {"pool.requests": stats.get("requests_num", 0), "pool.queued": stats.get("requests_queued", 0),
            "pool.wait_ms": stats.get("requests_wait_ms", 0), "pool.timeouts": stats.get("requests_errors", 0)}


class _PoolFull(logging.Handler):
    """Counts urllib3's "Connection pool is full, discarding connection" warnings (a keep-alive
    connection thrown away because more threads shared one host pool than it holds)."""

    def emit(self, record: logging.LogRecord) -> None:
        if "pool is full" in record.getMessage():
            instrument.bump("http.pool_full_discards")


instrument.probes.append(_pool_stats)
logging.getLogger("urllib3.connectionpool").addHandler(_PoolFull(logging.WARNING))


@app.task(name=NOOP, ignore_result=True, acks_late=True)
def noop(run_id: int) -> None:
    """Does nothing: the Celery floor for one message (same options as a chain step)."""


@app.task(name=NOOP_FAN_OUT, bind=True, ignore_result=True)
def noop_fan_out(self: Task, n: int) -> int:
    """Publish ``n`` no-op tasks from inside a worker, the way autosync.fan_out publishes steps."""
    for i in range(n):
        noop.apply_async(args=(i,), queue=BENCH_QUEUE)
    return n


import bench.baseline  # noqa: E402,F401  (registers the baseline tasks on this app)


def _stats_url() -> str:
    return os.environ.get("BENCH_STATS_URL", "redis://127.0.0.1:6379/22")


@worker_process_init.connect
def _child_started(**_: object) -> None:
    instrument.start_flusher(_stats_url())


@worker_ready.connect
def _ready(**_: object) -> None:
    instrument.start_flusher(_stats_url())


@worker_process_shutdown.connect
@worker_shutdown.connect
def _flush(**_: object) -> None:
    instrument.flush_now()


@task_success.connect
def _succeeded(sender: Any = None, **_: object) -> None:
    name = getattr(sender, "name", "?")
    instrument.bump(f"task.ok:{name}")
    instrument.bump("task.ok")
    instrument.high_water(f"last.{name}", time.time())


@task_retry.connect
def _retried(sender: Any = None, **_: object) -> None:
    instrument.bump(f"task.retry:{getattr(sender, 'name', '?')}")


@task_failure.connect
def _failed(sender: Any = None, **_: object) -> None:
    instrument.bump(f"task.failed:{getattr(sender, 'name', '?')}")


__all__ = ["app"]

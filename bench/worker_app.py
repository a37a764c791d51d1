"""The app benchmark workers run (``celery -A bench.worker_app worker``): autosync's app, unchanged,
plus a no-op task, the seed-style baseline tasks and in-process counters (see instrument.py).
"""

from __future__ import annotations

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

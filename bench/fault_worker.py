"""autosync's own Celery app, unchanged, plus a marker per busy pool process for the fault bench.

Each pool process writes ``$BENCH_FAULT_MARKS/<pid>`` holding the task it runs (removed when the task
ends), so the bench can SIGKILL a process while it is inside a chosen step kind.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from celery.signals import task_postrun, task_prerun

from autosync.celery import app

MARKS = Path(os.environ.get("BENCH_FAULT_MARKS", "/tmp/autosync-fault-marks"))

__all__ = ["app"]


@task_prerun.connect
def _mark(task: Any = None, **_: Any) -> None:
    with contextlib.suppress(OSError):
        (MARKS / str(os.getpid())).write_text(getattr(task, "name", "?"))


@task_postrun.connect
def _unmark(**_: Any) -> None:
    with contextlib.suppress(OSError):
        (MARKS / str(os.getpid())).unlink()

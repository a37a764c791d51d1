"""The Celery application (``celery -A autosync worker|beat|flower``)."""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import sys
from pathlib import Path
from typing import Any

from celery import Celery, bootsteps
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
)

from autosync.errors import ConfigError
from autosync.settings import get_settings

app = Celery("autosync")
log = logging.getLogger("autosync.worker")


def _under_celery_command() -> bool:
    """Whether this process is the `celery` program (not a library import, a test or the autosync CLI)."""
    argv0 = sys.argv[0] if sys.argv else ""
    return Path(argv0).name == "celery" or argv0.endswith(("celery/__main__.py", "celery"))


def _configure() -> None:
    # Settings are read now, not when Celery first reads its configuration deep inside its command
    # line parser: a bad value then prints one line naming the variable, not a 100-line traceback.
    try:
        get_settings()
    except ConfigError as exc:
        if _under_celery_command():
            print(f"autosync: configuration error: {exc}", file=sys.stderr)  # as the autosync CLI says it
            raise SystemExit(2) from None
        raise
    # celeryconfig.py sits at the repository top level; make it importable wherever we run from.
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    app.config_from_object("celeryconfig")


class Liveness(bootsteps.StartStopStep):
    """Touch AUTOSYNC_WORKER_LIVENESS_FILE every few seconds while the worker consumes.

    The timer runs on the consumer's own loop, and the step stops (the file is removed) when the
    broker connection is lost, so a fresh file means: process alive, loop responsive, connected.
    Checking it is a stat (`autosync health worker`), far lighter than a `celery inspect ping`
    broadcast through the broker.
    """

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.path = get_settings().worker_liveness_file
        self.tref: Any = None
        self.warned = False

    def _beat(self) -> None:
        from autosync.services.health import touch

        try:
            touch(self.path)
        except OSError as exc:
            if not self.warned:
                log.warning("cannot touch the liveness file", extra={"path": self.path, "error": str(exc)})
                self.warned = True

    def start(self, parent: Any) -> None:
        """Touch now and every HEARTBEAT_EVERY seconds."""
        from autosync.services.health import HEARTBEAT_EVERY

        if not self.path:
            return
        self._beat()
        self.tref = parent.timer.call_repeatedly(HEARTBEAT_EVERY, self._beat)

    def stop(self, parent: Any) -> None:
        """Stop touching, and remove the file so a check fails at once."""
        from autosync.services.health import remove

        if self.tref is not None:
            self.tref.cancel()
            self.tref = None
        if self.path:
            with contextlib.suppress(OSError):
                remove(self.path)

    shutdown = stop


_configure()
app.steps["consumer"].add(Liveness)
import autosync.tasks  # noqa: E402,F401  (registers the tasks)

# Collect young objects every 50,000 allocations instead of every 700. Parsing and normalizing a
# 2,500-event page creates some 150,000 containers that all stay alive until the page is written, so
# at the default every few hundred of them triggered a collection that found nothing to free and
# pushed the rest towards full collections of the whole heap: measured, 27 % of the Python time of
# a large initial sync (JSON parsing alone 2.4 times slower). The cost is that cyclic garbage waits
# longer, a few MB at most; reference counting frees everything else at once, as before.
GC_THRESHOLDS = (50_000, 20, 20)


# The modules the tasks import when they first run (autosync.tasks imports them lazily, which keeps
# the CLI and the app's enqueue path light). A worker loads them once, before its pool starts, so
# prefork children share them instead of each paying for them in its first task.
STEP_MODULES = ("autosync.services.pull", "autosync.services.initial", "autosync.services.watch",
                "autosync.services.syncback", "autosync.services.notices", "autosync.services.adhoc")


@worker_init.connect
def _tune_gc(**_: object) -> None:
    """Set in the worker's main process, before its pool starts: prefork children inherit it."""
    gc.set_threshold(*GC_THRESHOLDS)
    for name in STEP_MODULES:
        importlib.import_module(name)


@worker_process_init.connect
def _open_pool(**_: object) -> None:
    """A prefork child connects to PostgreSQL as it starts, not in its first task (a new calendar's
    first sync after a deploy would otherwise wait for it)."""
    from autosync.store.db import pool

    with contextlib.suppress(Exception):  # a database that is down is the first task's to report
        pool()


@worker_process_shutdown.connect
def _close_pool(**_: object) -> None:
    from autosync.store.db import close_pool

    close_pool()


@after_setup_logger.connect
@after_setup_task_logger.connect
def _structured_logs(logger: object, **_: object) -> None:
    """JSON lines with secrets scrubbed on every handler Celery sets up."""
    from autosync.log import install

    for handler in getattr(logger, "handlers", []):
        install(handler, get_settings().secrets())

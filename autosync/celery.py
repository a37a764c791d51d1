"""The Celery application (``celery -A autosync worker|beat|flower``)."""

from __future__ import annotations

import sys
from pathlib import Path

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger, worker_process_shutdown

app = Celery("autosync")


def _configure() -> None:
    # celeryconfig.py sits at the repository top level; make it importable wherever we run from.
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    app.config_from_object("celeryconfig")


_configure()
import autosync.tasks  # noqa: E402,F401  (registers the tasks)


@worker_process_shutdown.connect
def _close_pool(**_: object) -> None:
    from autosync.store.db import close_pool

    close_pool()


@after_setup_logger.connect
@after_setup_task_logger.connect
def _structured_logs(logger: object, **_: object) -> None:
    """JSON lines with secrets scrubbed on every handler Celery sets up."""
    from autosync.log import install
    from autosync.settings import get_settings

    for handler in getattr(logger, "handlers", []):
        install(handler, get_settings().secrets())

"""Structured, secret-free logging: one JSON line per record, tokens and client secrets scrubbed.

Scrubbing happens in the formatter, on everything it writes: the message after `%s` formatting,
nested extra values (dicts, lists; credential keys masked whatever their value), the traceback
and the stack, and finally the whole line. A filter could not do that: tracebacks are formatted
after filters run, and a filter that rewrote the record would change it for every other handler.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from autosync.redact import scrub, scrub_value

_STD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's extra fields, scrubbed."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def format(self, record: logging.LogRecord) -> str:
        """The record as one scrubbed JSON line."""
        data: dict[str, Any] = {"ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                                "level": record.levelname, "logger": record.name, "msg": record.getMessage()}
        for key, value in vars(record).items():
            if key not in _STD and not key.startswith("_"):
                data[key] = value
        if isinstance(data.get("data"), dict) and "traceback" in data["data"]:
            # Celery's task-error context always carries the traceback text. When its log policy wants
            # one it also passes exc_info (written as "exc" below); when it does not (an expected
            # failure such as StepFailed, a retry) the traceback is noise: dropped either way.
            data["data"] = {k: v for k, v in data["data"].items() if k != "traceback"}
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exc"] = record.exc_text
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        line = json.dumps(scrub_value(data, self.secrets), default=str)
        return scrub(line, self.secrets)


class ScrubbingFormatter(logging.Formatter):
    """Keeps another formatter's layout and scrubs the text it produces (tracebacks included)."""

    def __init__(self, inner: logging.Formatter | None, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()
        self.secrets = [s for s in secrets if s]

    def format(self, record: logging.LogRecord) -> str:
        """The inner formatter's text, scrubbed."""
        return scrub(self.inner.format(record), self.secrets)


def log_to_stderr(level: str | int, secrets: list[str]) -> None:
    """A server process's logging: scrubbed JSON lines on stderr at ``level``, replacing any set-up."""
    handler = logging.StreamHandler()
    install(handler, secrets)
    logging.basicConfig(level=level, handlers=[handler], force=True)


def install(handler: logging.Handler, secrets: list[str], *, json_lines: bool = True) -> None:
    """Make a handler write scrubbed lines (JSON by default, else its own layout, scrubbed)."""
    if json_lines:
        handler.setFormatter(JsonFormatter(secrets))
    elif not isinstance(handler.formatter, (JsonFormatter, ScrubbingFormatter)):
        handler.setFormatter(ScrubbingFormatter(handler.formatter, secrets))

"""Structured, secret-free logging: one JSON line per record, tokens and client secrets scrubbed."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

_STD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_PATTERNS = [
    re.compile(r"(Bearer\s+)[A-Za-z0-9\-._~+/%=]+", re.I),
    re.compile(r"((?:access|refresh|id)_token[\"']?\s*[:=]\s*[\"']?)[^\"'&\s,}]+", re.I),
    re.compile(r"((?:client_secret|refreshToken|token)[\"']?\s*[:=]\s*[\"']?)[^\"'&\s,}]+", re.I),
]


class Scrubber(logging.Filter):
    """Removes bearer tokens, OAuth tokens and configured secrets from every record."""

    def __init__(self, secrets: list[str] | None = None) -> None:
        super().__init__()
        self.secrets = [s for s in (secrets or []) if len(s) >= 4]

    def scrub(self, text: str) -> str:
        """The text with secrets replaced by ***."""
        for pattern in _PATTERNS:
            text = pattern.sub(r"\1***", text)
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.scrub(record.getMessage())
        record.args = None
        for key, value in list(vars(record).items()):
            if key not in _STD and isinstance(value, str):
                setattr(record, key, self.scrub(value))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {"ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                                "level": record.levelname, "logger": record.name, "msg": record.getMessage()}
        for key, value in vars(record).items():
            if key not in _STD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def install(handler: logging.Handler, secrets: list[str], *, json_lines: bool = True) -> None:
    """Put the scrubber (and the JSON formatter) on a handler."""
    handler.addFilter(Scrubber(secrets))
    if json_lines:
        handler.setFormatter(JsonFormatter())

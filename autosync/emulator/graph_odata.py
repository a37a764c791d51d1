"""The small OData subset of the Graph emulator: $filter, $orderby, $top/$skip paging links (Graph event listing)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from autosync.emulator.core import Request
from autosync.emulator.graph_errors import bad_request
from autosync.emulator.graph_model import StoredEvent
from autosync.emulator.graph_store import instant
from autosync.emulator.graph_time import parse_instant

Predicate = Callable[[StoredEvent], bool]
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}
_TYPE_RE = re.compile(r"^type\s+(eq|ne)\s+'(\w+)'$")
_STAMP_RE = re.compile(r"^(lastModifiedDateTime|createdDateTime)\s+(eq|ne|gt|ge|lt|le)\s+'?([^'\s]+)'?$")
_TIME_RE = re.compile(r"^(start|end)/dateTime\s+(eq|ne|gt|ge|lt|le)\s+'([^']+)'$")
_SUBJECT_RE = re.compile(r"^subject\s+(eq|ne)\s+'((?:[^']|'')*)'$")
_AND_RE = re.compile(r"\s+and\s+", re.IGNORECASE)
_ORDER_KEYS: dict[str, Callable[[StoredEvent], Any]] = {
    "start/dateTime": lambda e: instant(e.start, e.all_day),
    "end/dateTime": lambda e: instant(e.end, e.all_day),
    "lastModifiedDateTime": lambda e: e.modified,
    "createdDateTime": lambda e: e.created,
    "subject": lambda e: e.props.get("subject", ""),
}


def _clause(text: str) -> Predicate:
    text = text.strip().strip("()").strip()
    if m := _TYPE_RE.match(text):
        op, value = _OPS[m.group(1)], m.group(2)
        return lambda e: op(e.kind, value)
    if m := _STAMP_RE.match(text):
        attr = "modified" if m.group(1) == "lastModifiedDateTime" else "created"
        op, stamp = _OPS[m.group(2)], parse_instant(m.group(3), m.group(1))
        return lambda e: op(getattr(e, attr), stamp)
    if m := _TIME_RE.match(text):
        which, op, stamp = m.group(1), _OPS[m.group(2)], parse_instant(m.group(3), m.group(1))
        return lambda e: op(instant(e.start if which == "start" else e.end, e.all_day), stamp)
    if m := _SUBJECT_RE.match(text):
        op, subject = _OPS[m.group(1)], m.group(2).replace("''", "'")
        return lambda e: op(e.props.get("subject", ""), subject)
    raise bad_request(f"Invalid filter clause: '{text}' is not supported by the emulator's OData subset.")


def parse_filter(value: str | None) -> Predicate:
    """A predicate for ``$filter`` (clauses joined by ``and``); 400 for anything else."""
    if not value:
        return lambda e: True
    clauses = [_clause(part) for part in _AND_RE.split(value)]
    return lambda e: all(c(e) for c in clauses)


def order(items: list[StoredEvent], value: str | None) -> list[StoredEvent]:
    """Apply ``$orderby`` (one key, asc/desc); default keeps creation order."""
    if not value:
        return items
    parts = value.strip().split()
    key = _ORDER_KEYS.get(parts[0])
    if key is None or len(parts) > 2 or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc")):
        raise bad_request(f"Unsupported $orderby '{value}'.")
    return sorted(items, key=key, reverse=len(parts) == 2 and parts[1].lower() == "desc")


def top_skip(req: Request, default_top: int) -> tuple[int, int]:
    """``$top`` (1..1000, default ``default_top``) and ``$skip`` (>= 0)."""
    top_text, skip_text = req.param("$top"), req.param("$skip")
    try:
        top = int(top_text) if top_text is not None else default_top
        skip = int(skip_text) if skip_text is not None else 0
    except ValueError as exc:
        raise bad_request("$top and $skip must be integers.") from exc
    if not 1 <= top <= 1000 or skip < 0:
        raise bad_request("$top must be between 1 and 1000 and $skip must not be negative.")
    return top, skip


def raw_pairs(raw_query: str) -> list[tuple[str, str]]:
    """Query pairs with decoded names and values kept exactly as received."""
    pairs = []
    for part in raw_query.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((unquote(name), value))
    return pairs


def skip_link(req: Request, top: int, skip: int) -> str:
    """The absolute ``@odata.nextLink`` for the next ``$skip`` page, other parameters kept."""
    kept = [f"{n}={v}" for n, v in raw_pairs(req.raw_query) if n not in ("$skip", "$top")]
    query = "&".join([*kept, f"$top={top}", f"$skip={skip}"])
    return f"{req.base_url}/graph/v1.0{req.path}?{query}"


def window(req: Request) -> tuple[datetime, datetime]:
    """The required ``startDateTime``/``endDateTime`` window (offset honoured, UTC if absent)."""
    low = parse_instant(req.param("startDateTime"), "startDateTime")
    high = parse_instant(req.param("endDateTime"), "endDateTime")
    if high <= low:
        raise bad_request("endDateTime must be after startDateTime.", "ErrorInvalidParameter")
    return low, high

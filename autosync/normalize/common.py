"""Small pure helpers shared by the Google and Graph normalizers: parsing, JSON text, field access."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from autosync.errors import NormalizeError

ONE_DAY = timedelta(days=1)


def compact_json(value: object) -> str:
    """Compact, key-sorted JSON text (stable, so content hashes do not flap)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def as_dict(value: object) -> dict[str, Any]:
    """The value if it is a JSON object, else an empty dict (absent and null nested objects)."""
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[Any]:
    """The value if it is a JSON array, else an empty list."""
    return value if isinstance(value, list) else []


def text(value: object) -> str:
    """A string field; null/absent/non-string become ''."""
    return value if isinstance(value, str) else ""


def item_id(item: object) -> str:
    """The item's id, or raise NormalizeError for a non-object or a missing/empty id."""
    if not isinstance(item, dict):
        raise NormalizeError("", f"item is not a JSON object ({type(item).__name__})")
    ext_id = item.get("id")
    if not isinstance(ext_id, str) or not ext_id:
        raise NormalizeError("", "missing id")
    return ext_id


def parse_date(ext_id: str, value: object, what: str) -> date:
    """Parse a yyyy-mm-dd date or raise NormalizeError."""
    try:
        return date.fromisoformat(str(value)[:10]) if isinstance(value, str) else _bad(value)
    except ValueError as exc:
        raise NormalizeError(ext_id, f"bad {what} date {value!r}: {exc}") from None


def parse_datetime(ext_id: str, value: object, what: str, zone: tzinfo | None) -> datetime:
    """Parse an ISO 8601 / RFC 3339 date-time to an aware UTC datetime.

    A value without an offset is read as wall time in ``zone``; with no zone that is an error.
    Python 3.11's ``fromisoformat`` accepts Graph's 7 fractional digits (truncated to 6).
    """
    if not isinstance(value, str):
        raise NormalizeError(ext_id, f"bad {what} dateTime {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise NormalizeError(ext_id, f"bad {what} dateTime {value!r}: {exc}") from None
    if parsed.tzinfo is None:
        if zone is None:
            raise NormalizeError(ext_id, f"{what} dateTime {value!r} has no offset and no time zone")
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)


def parse_utc(value: object) -> datetime | None:
    """Parse an RFC 3339 timestamp (updated / lastModifiedDateTime) to UTC; None when absent or bad."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def check_order(ext_id: str, start: date, end: date) -> None:
    """Raise NormalizeError when end is before start (dates or UTC datetimes)."""
    if end < start:
        raise NormalizeError(ext_id, f"end {end.isoformat()} is before start {start.isoformat()}")


def _bad(value: object) -> date:
    raise ValueError(f"not a string: {type(value).__name__}")

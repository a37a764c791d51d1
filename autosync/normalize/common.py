"""Small pure helpers shared by the Google and Graph normalizers: parsing, JSON text, field access."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

import orjson

from autosync.errors import NormalizeError

ONE_DAY = timedelta(days=1)
# Key of the stand-in that staging writes for a provider item it cannot store as JSON (nested too
# deep, an integer beyond 64 bits, …): {"id": <the item's id>, UNSTAGED: <why>}. Normalizing the
# stand-in raises NormalizeError, so the item is skipped and recorded like any other malformed one.
UNSTAGED = "@autosync.unstaged"
# orjson, which encodes staged pages and providerData, refuses containers nested deeper than this.
MAX_NESTING = 254


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
    """The item's id; NormalizeError for a non-object, a missing/empty id, a staging stand-in, or an
    item JSON storage cannot hold.

    Items from listings were staged already; items fetched one by one (series masters, /instances)
    were not. Checking here, with the encoder that stores pages and providerData, means no Event ever
    carries a raw item that providerData, conflict records or the push path could not serialize.
    """
    if not isinstance(item, dict):
        raise NormalizeError("", f"item is not a JSON object ({type(item).__name__})")
    ext_id = item.get("id")
    if UNSTAGED in item:
        raise NormalizeError(text(ext_id), text(item[UNSTAGED]) or "provider item could not be staged")
    if not isinstance(ext_id, str) or not ext_id:
        raise NormalizeError("", "missing id")
    try:
        orjson.dumps(item)  # about 2 µs for a full Graph event
    except TypeError as exc:  # orjson.JSONEncodeError
        why = f"nested more than {MAX_NESTING} levels deep" if "ecursion" in str(exc) else str(exc)
        raise NormalizeError(ext_id, f"provider item cannot be stored as JSON: {why}") from None
    return ext_id


def parse_date(ext_id: str, value: object, what: str) -> date:
    """Parse a yyyy-mm-dd date or raise NormalizeError (also for the first and last representable days:
    the normalizers move all-day ends by one day, which must not overflow)."""
    try:
        day = date.fromisoformat(str(value)[:10]) if isinstance(value, str) else _bad(value)
    except ValueError as exc:
        raise NormalizeError(ext_id, f"bad {what} date {value!r}: {exc}") from None
    if not date.min < day < date.max:
        raise NormalizeError(ext_id, f"{what} date {value!r} is out of range")
    return day


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
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:00 in a zone west of UTC
        raise NormalizeError(ext_id, f"{what} dateTime {value!r} is out of range") from None


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

"""Time handling of the Graph emulator: zone names (Windows and IANA), Graph date-time text, windows."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import tz_win, win_tz

from autosync.emulator.graph_errors import GraphError

NEVER = "0001-01-01T00:00:00Z"  # Graph's "no time" value (attendee status.time, responseStatus.time)
_OFFSET_RE = re.compile(r"(Z|[+-]\d\d:?\d\d)$")
_FRACTION_RE = re.compile(r"\.(\d+)")


def resolve_zone(name: str | None) -> ZoneInfo:
    """The zone for a Graph ``timeZone`` value (Windows or IANA name); 400 when unknown."""
    if not name or name in ("UTC", "Etc/UTC", "GMT", "Coordinated Universal Time"):
        return ZoneInfo("UTC")
    iana = win_tz.get(name, name)
    try:
        return ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise GraphError(
            400,
            "TimeZoneNotSupportedException",
            f"A valid TimeZone value must be specified. The following TimeZone value is not supported: "
            f"'{name}'.",
        ) from exc


def windows_name(zone: tzinfo) -> str:
    """The Windows name Graph uses in ``originalStartTimeZone`` for a zone."""
    key = getattr(zone, "key", "UTC")
    if key in ("UTC", "Etc/UTC"):
        return "UTC"
    return tz_win.get(key, key)


def graph_dt(value: datetime) -> str:
    """Graph ``dateTime`` text: 7 fractional digits and no offset (provider rule 9)."""
    return value.strftime("%Y-%m-%dT%H:%M:%S") + f".{value.microsecond:06d}0"


def graph_stamp(value: datetime) -> str:
    """Graph DateTimeOffset text in UTC with 7 fractional digits and ``Z``."""
    return graph_dt(value.astimezone(UTC)) + "Z"


def graph_date_stamp(value: datetime) -> str:
    """Graph ``originalStart`` text (UTC, no fraction when zero), e.g. ``2024-05-13T07:00:00Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _trim_fraction(text: str) -> str:
    """Cut fractional seconds to 6 digits so ``fromisoformat`` accepts 7-digit Graph values."""
    return _FRACTION_RE.sub(lambda m: "." + (m.group(1) + "000000")[:6], text, count=1)


def parse_local(text: object) -> datetime:
    """Parse a Graph ``dateTime`` (no offset expected; an offset is dropped after conversion)."""
    if not isinstance(text, str) or not text:
        raise GraphError(400, "BadRequest", "dateTime is required.")
    try:
        value = datetime.fromisoformat(_trim_fraction(text.replace("Z", "+00:00")))
    except ValueError as exc:
        raise GraphError(400, "BadRequest", f"Cannot convert the literal '{text}' to a dateTime.") from exc
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def parse_instant(text: str | None, what: str) -> datetime:
    """Parse a query timestamp (``startDateTime`` etc.): offset honoured, UTC when absent."""
    if not text:
        raise GraphError(
            400,
            "ErrorInvalidParameter",
            f"This request requires a time window specified by "
            f"the query string parameters StartDateTime and EndDateTime ({what} missing).",
        )
    raw = text.strip().strip("'")
    try:
        value = datetime.fromisoformat(_trim_fraction(raw.replace("Z", "+00:00")))
    except ValueError as exc:
        raise GraphError(400, "ErrorInvalidParameter", f"The value '{text}' of {what} is invalid.") from exc
    if value.tzinfo is None and not _OFFSET_RE.search(raw):
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def to_utc(local: datetime, zone: tzinfo) -> datetime:
    """A naive wall-clock time in ``zone`` as an aware UTC instant."""
    return local.replace(tzinfo=zone).astimezone(UTC)


def floating_as_utc(value: date | datetime) -> datetime:
    """An all-day (floating) date as the UTC instant used for window comparisons."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def overlaps(start: datetime, end: datetime, win_start: datetime, win_end: datetime) -> bool:
    """Whether [start, end) touches the window (zero-length events count at their start)."""
    if end <= start:
        return win_start <= start < win_end
    return start < win_end and end > win_start


def utcnow() -> datetime:
    """The current UTC instant (one place to read the clock)."""
    return datetime.now(UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


def epoch(value: datetime) -> int:
    """Seconds since 1970 for an aware instant (a round snapshot takes several per occurrence)."""
    return int((value - _EPOCH) // _SECOND)


def from_epoch(seconds: int) -> datetime:
    """The aware UTC instant for ``seconds`` since 1970."""
    return _EPOCH + timedelta(seconds=seconds)

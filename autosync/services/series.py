"""Pure recurrence helpers: the occurrence slots a series master promises inside a window."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rruleset, rrulestr

from autosync.model import Event

MAX_SLOTS = 5000


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def expected_slots(master: Event, window: tuple[datetime, datetime]) -> list[datetime | date]:
    """Original start slots of a master's occurrences that overlap ``window``.

    Timed series expand in the master's own zone (so a 09:00 meeting stays 09:00 across DST) and
    come back in UTC; all-day series come back as dates.
    """
    if not master.recurrence or master.start is None:
        return []
    if isinstance(master.start, datetime):
        zone = _zone(master.start_tz)
        local_start = master.start.astimezone(zone).replace(tzinfo=None)
        duration = (master.end - master.start) if isinstance(master.end, datetime) else timedelta(0)
    else:
        zone = None
        local_start = datetime.combine(master.start, datetime.min.time())
        duration = timedelta(days=((master.end - master.start).days + 1) if isinstance(master.end, date) else 1)
    rules = rrulestr("\n".join(_local_lines(master.recurrence)), dtstart=local_start, forceset=True,
                     ignoretz=True)
    assert isinstance(rules, rruleset)
    lo, hi = window
    lo_local = (lo.astimezone(zone).replace(tzinfo=None) if zone else lo.replace(tzinfo=None)) - duration
    hi_local = hi.astimezone(zone).replace(tzinfo=None) if zone else hi.replace(tzinfo=None)
    slots: list[datetime | date] = []
    for occurrence in rules.between(lo_local, hi_local, inc=True):
        if zone is None:
            slots.append(occurrence.date())
        else:
            slots.append(occurrence.replace(tzinfo=zone).astimezone(UTC))
        if len(slots) >= MAX_SLOTS:
            break
    return slots


def _local_lines(lines: tuple[str, ...]) -> list[str]:
    """RRULE UNTIL in UTC must compare against naive local datetimes: drop the Z (ignoretz)."""
    out = []
    for line in lines:
        out.append(line)
    return out

"""Pure recurrence helpers: the occurrence slots a series master promises inside a window."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrulestr

from autosync.model import Event

MAX_SLOTS = 5000


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _dates(line: str, zone: tzinfo | None) -> list[datetime]:
    """The values of an EXDATE/RDATE line as naive datetimes on the series' own wall clock."""
    head, _, values = line.partition(":")
    params = dict(p.split("=", 1) for p in head.split(";")[1:] if "=" in p)
    source = _zone(params["TZID"]) if "TZID" in params else None
    out = []
    for value in filter(None, values.split(",")):
        value = value.strip()
        if len(value) == 8:  # VALUE=DATE
            out.append(datetime.strptime(value, "%Y%m%d"))
            continue
        utc = value.endswith("Z")
        moment = datetime.strptime(value.rstrip("Z"), "%Y%m%dT%H%M%S")
        if zone is not None and (utc or source is not None):
            aware = moment.replace(tzinfo=UTC if utc else source)
            moment = aware.astimezone(zone).replace(tzinfo=None)
        out.append(moment)
    return out


def _until_local(line: str, zone: tzinfo | None) -> str:
    """RRULE UNTIL in UTC (…Z) rewritten on the series' wall clock, so a naive expansion compares right."""
    parts = line.split(";")
    for i, part in enumerate(parts):
        if part.startswith("UNTIL=") and part.endswith("Z") and len(part) == 22:
            moment = datetime.strptime(part[6:-1], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
            local = moment.astimezone(zone).replace(tzinfo=None) if zone else moment.replace(tzinfo=None)
            parts[i] = "UNTIL=" + local.strftime("%Y%m%dT%H%M%S")
    return ";".join(parts)


def without_exdates(master: Event) -> Event:
    """The master with its rule alone: no EXDATE lines (the dates stay in ``excluded_dates``)."""
    kept = tuple(line for line in master.recurrence if not line.upper().startswith("EXDATE"))
    return master if kept == master.recurrence else replace(master, recurrence=kept)


def pin_all_day(guess: date, promised: set[date]) -> date:
    """The promised day an all-day instance's original slot means, when its reading is a day off.

    An all-day ``originalStart`` is a local midnight in a zone Graph may not name, so its day can be
    read one off (see normalize.outlook._all_day_slot); the rule's own days decide when exactly one
    neighbour of the reading is promised and the reading itself is not.
    """
    if guess in promised:
        return guess
    near = [day for day in (guess - timedelta(days=1), guess + timedelta(days=1)) if day in promised]
    return near[0] if len(near) == 1 else guess


def expected_slots(master: Event, window: tuple[datetime, datetime]) -> list[datetime | date]:
    """Original start slots of a master's occurrences that overlap ``window``.

    Timed series expand on their own zone's wall clock (a 09:00 meeting stays 09:00 across DST) and
    come back in UTC; all-day series come back as dates. EXDATE/RDATE values given in UTC or another
    TZID are converted to that wall clock first.
    """
    if not master.recurrence or master.start is None:
        return []
    zone: ZoneInfo | None
    if isinstance(master.start, datetime):
        zone = _zone(master.start_tz)
        local_start = master.start.astimezone(zone).replace(tzinfo=None)
        duration = (master.end - master.start) if isinstance(master.end, datetime) else timedelta(0)
    else:
        zone = None
        local_start = datetime.combine(master.start, datetime.min.time())
        duration = timedelta(days=((master.end - master.start).days + 1) if isinstance(master.end, date) else 1)
    rules = [_until_local(line, zone) for line in master.recurrence if line.upper().startswith(("RRULE", "EXRULE"))]
    if not rules:
        return []
    ruleset = rrulestr("\n".join(rules), dtstart=local_start, forceset=True, ignoretz=True)
    for line in master.recurrence:
        kind = line.split(":", 1)[0].split(";", 1)[0].upper()
        if kind == "EXDATE":
            for moment in _dates(line, zone):
                ruleset.exdate(moment if zone is not None or moment.time() != datetime.min.time()
                               else moment.replace(hour=local_start.hour, minute=local_start.minute))
        elif kind == "RDATE":
            for moment in _dates(line, zone):
                ruleset.rdate(moment)
    lo, hi = window
    lo_local = (lo.astimezone(zone).replace(tzinfo=None) if zone else lo.replace(tzinfo=None)) - duration
    hi_local = hi.astimezone(zone).replace(tzinfo=None) if zone else hi.replace(tzinfo=None)
    slots: list[datetime | date] = []
    for occurrence in ruleset.between(lo_local, hi_local, inc=True):
        slots.append(occurrence.date() if zone is None else occurrence.replace(tzinfo=zone).astimezone(UTC))
        if len(slots) >= MAX_SLOTS:
            break
    return slots

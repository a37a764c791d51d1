"""Google event times in the emulator: EventDateTime parsing, RFC 3339 output, recurrence expansion."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rruleset, rrulestr

UTC = UTC
_OFFSET_RE = re.compile(r"(Z|[+-]\d{2}:\d{2})$", re.IGNORECASE)
_UNTIL_RE = re.compile(r"UNTIL=(\d{8})(?:T(\d{6})(Z?))?", re.IGNORECASE)
_SUFFIX_RE = re.compile(r"^(\d{8})(T\d{6}Z)?$")
MAX_INSTANCES = 2000


def zone(name: str | None, default: str = "UTC") -> tzinfo:
    """A tzinfo for an IANA name (UTC when unknown)."""
    try:
        return ZoneInfo(name or default)
    except (KeyError, ValueError):
        return UTC


def has_offset(value: str) -> bool:
    """Whether an RFC 3339 timestamp carries an explicit offset (Z or ±hh:mm)."""
    return bool(_OFFSET_RE.search(value.strip()))


def parse_rfc3339(value: str) -> datetime:
    """Parse an RFC 3339 timestamp; naive when it has no offset."""
    text = value.strip()
    if text[-1:] in ("z", "Z"):
        text = text[:-1] + "+00:00"
    return datetime.fromisoformat(text)


def is_all_day(edt: dict[str, Any]) -> bool:
    """Whether an EventDateTime is a date (all-day) value."""
    return "date" in edt and edt.get("date") is not None and not edt.get("dateTime")


def edt_value(edt: dict[str, Any]) -> datetime | date:
    """The EventDateTime as an aware datetime, or a date for all-day values."""
    if is_all_day(edt):
        return date.fromisoformat(edt["date"])
    parsed = parse_rfc3339(edt["dateTime"])
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone(edt.get("timeZone")))
    return parsed


def as_instant(value: datetime | date, cal_tz: tzinfo) -> datetime:
    """An aware instant for sorting/filtering; dates are midnight in the calendar zone."""
    if isinstance(value, datetime):
        return value
    return datetime.combine(value, time(), cal_tz)


def fmt_utc(dt: datetime) -> str:
    """RFC 3339 UTC with milliseconds, as Google writes created/updated."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def fmt_in_zone(dt: datetime, tz: tzinfo) -> str:
    """RFC 3339 in a zone, seconds precision; 'Z' when the offset is zero."""
    local = dt.astimezone(tz)
    text = local.replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def render_edt(edt: dict[str, Any], tz: tzinfo) -> dict[str, Any]:
    """An EventDateTime as Google returns it: dateTime rendered with the response zone's offset."""
    if is_all_day(edt) or not edt.get("dateTime"):
        return dict(edt)
    out = dict(edt)
    out["dateTime"] = fmt_in_zone(edt_value(edt), tz)  # type: ignore[arg-type]
    return out


def instance_suffix(original: datetime | date) -> str:
    """The `{YYYYMMDDTHHMMSSZ}` / `{YYYYMMDD}` suffix of an instance id."""
    if isinstance(original, datetime):
        return original.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return original.strftime("%Y%m%d")


def split_instance_id(event_id: str) -> tuple[str, str] | None:
    """(master id, suffix) when the id has the instance form, else None."""
    master, sep, suffix = event_id.rpartition("_")
    if not sep or not master or not _SUFFIX_RE.match(suffix):
        return None
    return master, suffix


def occurrences(
    master: dict[str, Any], after: datetime | None, before: datetime, cal_tz: tzinfo
) -> list[datetime | date]:
    """Original start values of a recurring master's instances whose start is in [after, before)."""
    return list(islice(_instances(master, after, before, cal_tz), MAX_INSTANCES))


def occurs(master: dict[str, Any], after: datetime | None, before: datetime, cal_tz: tzinfo) -> bool:
    """Whether a recurring master has an instance whose start is in [after, before).

    The same answer as ``bool(occurrences(...))``, from the first instance alone: a listing asks this
    of every series, and expanding each one over a ten-year horizon (up to MAX_INSTANCES values)
    only to test for emptiness was most of the emulator's time on a large calendar.
    """
    return next(_instances(master, after, before, cal_tz), None) is not None


def _instances(
    master: dict[str, Any], after: datetime | None, before: datetime, cal_tz: tzinfo
) -> Iterator[datetime | date]:
    """The instance starts in [after, before), lazily and in order."""
    start = edt_value(master["start"])
    if isinstance(start, datetime):
        tz_name = master["start"].get("timeZone")
        dtstart = start.astimezone(zone(tz_name)) if tz_name else start
    else:
        dtstart = datetime.combine(start, time())
    rules = build_ruleset(master.get("recurrence") or [], dtstart)
    lo = _align(after, dtstart, cal_tz) if after is not None else dtstart - timedelta(seconds=1)
    hi = _align(before, dtstart, cal_tz)
    for value in rules.xafter(lo, inc=True):
        if value >= hi:
            return
        yield value if isinstance(start, datetime) else value.date()


def _align(value: datetime, dtstart: datetime, cal_tz: tzinfo) -> datetime:
    if dtstart.tzinfo is not None:
        return value
    return value.astimezone(cal_tz).replace(tzinfo=None)


def is_occurrence(master: dict[str, Any], original: datetime | date, cal_tz: tzinfo) -> bool:
    """Whether `original` is one of the master's generated instance starts."""
    inst = as_instant(original, cal_tz)
    hits = occurrences(master, inst, inst + timedelta(seconds=1), cal_tz)
    return any(instance_suffix(h) == instance_suffix(original) for h in hits)


def build_ruleset(recurrence: list[str], dtstart: datetime) -> rruleset:
    """An rruleset from Google `recurrence` lines (RRULE/EXRULE/RDATE/EXDATE) anchored at dtstart."""
    rules = rruleset()
    rules.rdate(dtstart)
    for line in recurrence:
        head, _, value = line.partition(":")
        key, *params = head.split(";")
        key = key.strip().upper()
        if key in ("RRULE", "EXRULE"):
            rule = _rule(value, dtstart)
            if key == "RRULE":
                rules.rrule(rule)  # type: ignore[arg-type]
            else:
                rules.exrule(rule)  # type: ignore[arg-type]
        elif key in ("RDATE", "EXDATE"):
            for item in _parse_dates(params, value, dtstart):
                (rules.rdate if key == "RDATE" else rules.exdate)(item)
    return rules


def _rule(value: str, dtstart: datetime) -> rrule:
    """``rrulestr(value, dtstart=dtstart)``, with UNTIL made to agree with DTSTART, for less.

    A large calendar's listing parses the rule of every series it tests, and dateutil parses UNTIL
    with its general date parser (a tenth of a millisecond each): the rule without UNTIL is parsed
    once per distinct text and anchored with ``replace``, which derives the defaults (BYDAY of a
    weekly rule, say) from the new DTSTART as a fresh parse would; UNTIL is read here.
    """
    fixed = _fix_until(value, dtstart)
    match = _UNTIL_RE.search(fixed)
    if match is None:
        return _template(fixed).replace(dtstart=dtstart)
    day, clock, z = match.group(1), match.group(2), match.group(3)
    until = datetime.strptime(day + (clock or "000000"), "%Y%m%d%H%M%S")
    if z:
        until = until.replace(tzinfo=UTC)
    rest = ";".join(part for part in (fixed[: match.start()] + fixed[match.end() :]).split(";") if part)
    return _template(rest).replace(dtstart=dtstart, until=until)


@lru_cache(maxsize=4096)
def _template(value: str) -> rrule:
    return rrulestr(value, dtstart=_TEMPLATE_START)  # type: ignore[return-value]


_TEMPLATE_START = datetime(2000, 1, 1)


def _fix_until(value: str, dtstart: datetime) -> str:
    """Make UNTIL agree with DTSTART's awareness, as dateutil insists."""

    def repl(match: re.Match[str]) -> str:
        day, clock, z = match.group(1), match.group(2), match.group(3)
        if dtstart.tzinfo is None:
            return f"UNTIL={day}T{clock}" if clock else f"UNTIL={day}"
        if clock and z:
            return match.group(0)
        local = datetime.strptime(day + (clock or "235959"), "%Y%m%d%H%M%S").replace(tzinfo=dtstart.tzinfo)
        return "UNTIL=" + local.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")

    return _UNTIL_RE.sub(repl, value)


def _parse_dates(params: list[str], value: str, dtstart: datetime) -> list[datetime]:
    opts = dict(p.split("=", 1) for p in params if "=" in p)
    tzid = opts.get("TZID")
    out = []
    for raw in value.split(","):
        raw = raw.strip()
        if not raw:
            continue
        if len(raw) == 8:
            day = datetime.strptime(raw, "%Y%m%d")
            item = datetime.combine(day.date(), dtstart.time()) if dtstart.tzinfo else day
            if dtstart.tzinfo is not None:
                item = item.replace(tzinfo=dtstart.tzinfo)
        else:
            item = datetime.strptime(raw.rstrip("Zz"), "%Y%m%dT%H%M%S")
            if raw.upper().endswith("Z"):
                item = item.replace(tzinfo=UTC)
            elif tzid:
                item = item.replace(tzinfo=zone(tzid))
            elif dtstart.tzinfo is not None:
                item = item.replace(tzinfo=dtstart.tzinfo)
        if dtstart.tzinfo is None and item.tzinfo is not None:
            item = item.replace(tzinfo=None)
        elif dtstart.tzinfo is not None:
            item = item.astimezone(dtstart.tzinfo)
        out.append(item)
    return out

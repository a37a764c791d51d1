"""Graph ``patternedRecurrence`` <-> RFC 5545 RRULE lines.

Reading ignores Graph's filler fields (``month: 0``, ``index: "first"``… — provider rule 40) by reading only
the fields relevant to ``pattern.type`` / ``range.type``; writing emits only those fields.
https://learn.microsoft.com/graph/api/resources/patternedrecurrence

Known semantic gap: Graph ``absoluteMonthly`` with ``dayOfMonth`` 29-31 falls on the month's last
day in shorter months, RFC 5545 ``BYMONTHDAY=31`` skips those months.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from autosync.errors import NormalizeError
from autosync.normalize.common import as_dict, as_list
from autosync.normalize.timezones import windows_name, zone

GRAPH_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
ICAL_DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
DAY_TO_ICAL = dict(zip(GRAPH_DAYS, ICAL_DAYS, strict=True))
ICAL_TO_DAY = dict(zip(ICAL_DAYS, GRAPH_DAYS, strict=True))
INDEX_TO_POS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}
POS_TO_INDEX = {v: k for k, v in INDEX_TO_POS.items()}
FREQ = {
    "daily": "DAILY",
    "weekly": "WEEKLY",
    "absoluteMonthly": "MONTHLY",
    "relativeMonthly": "MONTHLY",
    "absoluteYearly": "YEARLY",
    "relativeYearly": "YEARLY",
}
SUPPORTED_PARTS = frozenset(
    {"FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYSETPOS", "COUNT", "UNTIL", "WKST"}
)


def graph_to_rrule(recurrence: dict[str, Any], *, all_day: bool, tz: str | None = None) -> str:
    """The RRULE line for a Graph recurrence; ``tz`` is the fallback zone for an endDate's UNTIL."""
    pattern, rng = as_dict(recurrence.get("pattern")), as_dict(recurrence.get("range"))
    kind = pattern.get("type")
    if kind not in FREQ:
        raise NormalizeError("", f"unknown recurrence pattern type {kind!r}")
    parts = [f"FREQ={FREQ[kind]}", f"INTERVAL={_positive(pattern.get('interval') or 1, 'interval')}"]
    if kind.endswith("Yearly"):
        parts.append(f"BYMONTH={_in_range(pattern.get('month'), 1, 12, 'month')}")
    if kind.startswith("absolute"):
        parts.append(f"BYMONTHDAY={_in_range(pattern.get('dayOfMonth'), 1, 31, 'dayOfMonth')}")
    days = _graph_days(pattern) if kind == "weekly" or kind.startswith("relative") else []
    if kind == "weekly":
        parts.append("BYDAY=" + ",".join(days))
        first = str(pattern.get("firstDayOfWeek") or "sunday").lower()
        parts.append(f"WKST={DAY_TO_ICAL.get(first, 'SU')}")
    elif kind.startswith("relative"):
        pos = INDEX_TO_POS.get(str(pattern.get("index") or "first"))
        if pos is None:
            raise NormalizeError("", f"unknown recurrence index {pattern.get('index')!r}")
        single = len(days) == 1
        parts += [f"BYDAY={pos}{days[0]}"] if single else ["BYDAY=" + ",".join(days), f"BYSETPOS={pos}"]
    parts += _range_parts(rng, all_day=all_day, tz=tz)
    return "RRULE:" + ";".join(parts)


def _graph_days(pattern: dict[str, Any]) -> list[str]:
    names = [str(d).lower() for d in as_list(pattern.get("daysOfWeek"))]
    bad = [n for n in names if n not in DAY_TO_ICAL]
    if bad or not names:
        raise NormalizeError("", f"bad daysOfWeek {pattern.get('daysOfWeek')!r}")
    unique = sorted(set(names), key=GRAPH_DAYS.index)
    return [DAY_TO_ICAL[n] for n in unique]


def _range_parts(rng: dict[str, Any], *, all_day: bool, tz: str | None) -> list[str]:
    kind = rng.get("type") or "noEnd"
    if kind == "noEnd":
        return []
    if kind == "numbered":
        return [f"COUNT={_positive(rng.get('numberOfOccurrences'), 'numberOfOccurrences')}"]
    if kind != "endDate":
        raise NormalizeError("", f"unknown recurrence range type {kind!r}")
    try:
        end = date.fromisoformat(str(rng.get("endDate")))
    except ValueError:
        raise NormalizeError("", f"bad range endDate {rng.get('endDate')!r}") from None
    if all_day:
        return [f"UNTIL={end:%Y%m%d}"]
    where = zone(rng.get("recurrenceTimeZone")) or zone(tz) or UTC
    until = datetime.combine(end, time(23, 59, 59), tzinfo=where).astimezone(UTC)
    return [f"UNTIL={until:%Y%m%dT%H%M%SZ}"]


def rrule_to_graph(lines: Sequence[str], start: date | datetime, tz: str | None) -> dict[str, Any] | None:
    """Graph ``{pattern, range}`` for RFC 5545 lines, or None when there is no RRULE.

    EXDATE lines are ignored (Graph has no exclusion list: the caller deletes those occurrences);
    EXRULE, RDATE, several RRULEs, and rules Graph cannot express raise NormalizeError.
    """
    rules = []
    for line in lines:
        name = line.split(":", 1)[0].split(";", 1)[0].strip().upper()
        if name == "RRULE":
            rules.append(line.split(":", 1)[1] if ":" in line else "")
        elif name in {"EXRULE", "RDATE"}:
            raise NormalizeError("", f"{name} cannot be expressed in a Graph recurrence")
    if not rules:
        return None
    if len(rules) > 1:
        raise NormalizeError("", "several RRULEs cannot be expressed in a Graph recurrence")
    parts = _parse_rule(rules[0])
    where = zone(tz) or UTC
    local = start.astimezone(where) if isinstance(start, datetime) else None
    start_date = local.date() if local else start
    pattern = _pattern(parts, start_date)
    rng = _range(parts, start_date, local, where)
    rng["recurrenceTimeZone"] = windows_name(tz) or "UTC"
    return {"pattern": pattern, "range": rng}


def _parse_rule(rule: str) -> dict[str, str]:
    parts: dict[str, str] = {}
    for chunk in filter(None, rule.strip().split(";")):
        key, sep, value = chunk.partition("=")
        key = key.strip().upper()
        if not sep or key in parts:
            raise NormalizeError("", f"malformed RRULE part {chunk!r}")
        if key not in SUPPORTED_PARTS:
            raise NormalizeError("", f"RRULE part {key} cannot be expressed in a Graph recurrence")
        parts[key] = value.strip().upper()
    if "COUNT" in parts and "UNTIL" in parts:
        raise NormalizeError("", "RRULE has both COUNT and UNTIL")
    return parts


def _pattern(parts: dict[str, str], start: date) -> dict[str, Any]:
    freq = parts.get("FREQ")
    interval = _positive(parts.get("INTERVAL", "1"), "INTERVAL")
    byday = _byday(parts.get("BYDAY"))
    setpos = _setpos(parts.get("BYSETPOS"))
    if freq == "DAILY" and not (byday and interval == 1):
        _only(parts, {"WKST"}, freq)
        return {"type": "daily", "interval": interval}
    if freq in {"WEEKLY", "DAILY"}:  # DAILY;BYDAY=… with INTERVAL=1 is a weekly rule
        _only(parts, {"BYDAY", "WKST"}, freq)
        if any(n is not None for n, _ in byday):
            raise NormalizeError("", "weekly BYDAY with ordinals cannot be expressed in Graph")
        days = [d for _, d in byday] or [GRAPH_DAYS[start.weekday()]]
        first = ICAL_TO_DAY.get(parts.get("WKST", "MO"))
        if first is None:
            raise NormalizeError("", f"bad WKST {parts.get('WKST')!r}")
        return {"type": "weekly", "interval": interval, "daysOfWeek": days, "firstDayOfWeek": first}
    if freq not in {"MONTHLY", "YEARLY"}:
        raise NormalizeError("", f"FREQ={freq} cannot be expressed in a Graph recurrence")
    yearly = freq == "YEARLY"
    _only(parts, {"BYDAY", "BYMONTHDAY", "BYSETPOS"} | ({"BYMONTH"} if yearly else set()), freq)
    out: dict[str, Any] = {"interval": interval}
    if yearly:
        out["month"] = _in_range(parts.get("BYMONTH", start.month), 1, 12, "BYMONTH")
    if byday:
        if "BYMONTHDAY" in parts:
            raise NormalizeError("", "BYDAY with BYMONTHDAY cannot be expressed in Graph")
        out.update(_relative(byday, setpos))
        out["type"] = "relativeYearly" if yearly else "relativeMonthly"
    else:
        if setpos is not None:
            raise NormalizeError("", "BYSETPOS without BYDAY cannot be expressed in Graph")
        out["dayOfMonth"] = _in_range(parts.get("BYMONTHDAY", start.day), 1, 31, "BYMONTHDAY")
        out["type"] = "absoluteYearly" if yearly else "absoluteMonthly"
    return out


def _relative(byday: list[tuple[int | None, str]], setpos: int | None) -> dict[str, Any]:
    ordinals = {n for n, _ in byday}
    days = [d for _, d in byday]
    if setpos is not None:
        if ordinals != {None}:
            raise NormalizeError("", "BYSETPOS with ordinal BYDAY cannot be expressed in Graph")
        pos = setpos
    elif len(byday) == 1 and None not in ordinals:
        pos = byday[0][0] or 1
    else:
        raise NormalizeError("", "this monthly/yearly BYDAY cannot be expressed in Graph")
    if pos not in POS_TO_INDEX:
        raise NormalizeError("", f"position {pos} cannot be expressed in Graph (first..fourth, last)")
    return {"daysOfWeek": days, "index": POS_TO_INDEX[pos]}


def _range(parts: dict[str, str], start: date, local: datetime | None, where: Any) -> dict[str, Any]:
    if "COUNT" in parts:
        count = _positive(parts["COUNT"], "COUNT")
        return {"type": "numbered", "startDate": start.isoformat(), "numberOfOccurrences": count}
    if "UNTIL" not in parts:
        return {"type": "noEnd", "startDate": start.isoformat()}
    end = _until_date(parts["UNTIL"], local, where)
    if end < start:
        raise NormalizeError("", f"UNTIL {parts['UNTIL']} is before the start {start.isoformat()}")
    return {"type": "endDate", "startDate": start.isoformat(), "endDate": end.isoformat()}


def _until_date(value: str, local: datetime | None, where: Any) -> date:
    """The last date with an occurrence allowed by UNTIL, in the recurrence zone."""
    try:
        if len(value) == 8:
            return date(int(value[:4]), int(value[4:6]), int(value[6:8]))
        naive = datetime.strptime(value.rstrip("Z"), "%Y%m%dT%H%M%S")
    except ValueError:
        raise NormalizeError("", f"bad UNTIL {value!r}") from None
    until = naive.replace(tzinfo=UTC if value.endswith("Z") else where).astimezone(where)
    if local is not None and until.time() < local.time():
        return until.date() - timedelta(days=1)  # that day's occurrence would be after UNTIL
    return until.date()


def _byday(value: str | None) -> list[tuple[int | None, str]]:
    out: list[tuple[int | None, str]] = []
    for token in filter(None, (value or "").split(",")):
        code, num = token[-2:], token[:-2]
        if code not in ICAL_TO_DAY:
            raise NormalizeError("", f"bad BYDAY {value!r}")
        try:
            out.append((int(num) if num else None, ICAL_TO_DAY[code]))
        except ValueError:
            raise NormalizeError("", f"bad BYDAY {value!r}") from None
    return out


def _setpos(value: str | None) -> int | None:
    if value is None:
        return None
    if "," in value:
        raise NormalizeError("", "several BYSETPOS values cannot be expressed in Graph")
    try:
        return int(value)
    except ValueError:
        raise NormalizeError("", f"bad BYSETPOS {value!r}") from None


def _only(parts: dict[str, str], allowed: set[str], freq: str) -> None:
    extra = set(parts) - allowed - {"FREQ", "INTERVAL", "COUNT", "UNTIL"}
    if extra:
        raise NormalizeError("", f"FREQ={freq} with {', '.join(sorted(extra))} cannot be expressed in Graph")


def _positive(value: object, what: str) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise NormalizeError("", f"bad {what} {value!r}") from None
    if number < 1:
        raise NormalizeError("", f"{what} must be positive, got {number}")
    return number


def _in_range(value: object, low: int, high: int, what: str) -> int:
    number = _positive(value, what)
    if number > high or number < low:
        raise NormalizeError("", f"{what} {number} out of range {low}..{high}")
    return number

"""Graph recurrence (patternedRecurrence): write validation, filler-complete output, expansion.

Follows the Graph event resource documentation and PROVIDER_RULES.md (rule 40)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from dateutil import rrule as rr

from autosync.emulator.graph_errors import bad_request
from autosync.emulator.graph_time import resolve_zone, windows_name

DAYS = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"]
_RR_DAYS = {
    "sunday": rr.SU,
    "monday": rr.MO,
    "tuesday": rr.TU,
    "wednesday": rr.WE,
    "thursday": rr.TH,
    "friday": rr.FR,
    "saturday": rr.SA,
}
PATTERNS = ("daily", "weekly", "absoluteMonthly", "relativeMonthly", "absoluteYearly", "relativeYearly")
RANGES = ("endDate", "noEnd", "numbered")
INDEXES = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}
NO_DATE = "0001-01-01"


def _fail(message: str) -> None:
    raise bad_request(message, "ErrorInvalidRequest")


def _filler_ok(value: Any, *fillers: Any) -> bool:
    """Irrelevant fields may be absent or carry Graph's filler value (provider rule 40), nothing else."""
    return value is None or value in fillers


def _int_field(value: Any, name: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        _fail(f"Unsupported value for recurrence property '{name}': {value!r}.")
    return int(value)


def _days(value: Any) -> list[str]:
    if not isinstance(value, list) or not value or any(d not in DAYS for d in value):
        _fail(f"Unsupported value for recurrence property 'daysOfWeek': {value!r}.")
    return [d for d in DAYS if d in value]


def _pattern(raw: Any) -> dict[str, Any]:
    """Validate a pattern and return it with every filler field present."""
    if not isinstance(raw, dict) or raw.get("type") not in PATTERNS:
        _fail(f"Unsupported recurrence pattern type: {raw.get('type') if isinstance(raw, dict) else raw!r}.")
    kind = raw["type"]
    out: dict[str, Any] = {
        "type": kind,
        "interval": _int_field(raw.get("interval"), "interval", 1, 999),
        "month": 0,
        "dayOfMonth": 0,
        "daysOfWeek": [],
        "firstDayOfWeek": "sunday",
        "index": "first",
    }
    if kind.endswith("Yearly"):
        out["month"] = _int_field(raw.get("month"), "month", 1, 12)
    elif not _filler_ok(raw.get("month"), 0):
        _fail("Recurrence property 'month' is not supported for this pattern type.")
    if kind.startswith("absolute"):
        out["dayOfMonth"] = _int_field(raw.get("dayOfMonth"), "dayOfMonth", 1, 31)
    elif not _filler_ok(raw.get("dayOfMonth"), 0):
        _fail("Recurrence property 'dayOfMonth' is not supported for this pattern type.")
    if kind == "weekly" or kind.startswith("relative"):
        out["daysOfWeek"] = _days(raw.get("daysOfWeek"))
    elif raw.get("daysOfWeek") not in (None, []):
        _fail("Recurrence property 'daysOfWeek' is not supported for this pattern type.")
    first_day = raw.get("firstDayOfWeek")
    if first_day is not None and first_day not in DAYS:
        _fail(f"Unsupported value for recurrence property 'firstDayOfWeek': {first_day!r}.")
    out["firstDayOfWeek"] = first_day or "sunday"
    index = raw.get("index")
    if kind.startswith("relative"):
        if index is not None and index not in INDEXES:
            _fail(f"Unsupported value for recurrence property 'index': {index!r}.")
        out["index"] = index or "first"
    elif not _filler_ok(index, "first"):
        _fail("Recurrence property 'index' is not supported for this pattern type.")
    return out


def _parse_date(value: Any, name: str) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        _fail(f"Unsupported value for recurrence range property '{name}': {value!r}.")
        raise  # pragma: no cover


def _range(raw: Any, default_zone: str) -> dict[str, Any]:
    """Validate a range and return it with every filler field present."""
    if not isinstance(raw, dict) or raw.get("type") not in RANGES:
        _fail(f"Unsupported recurrence range type: {raw.get('type') if isinstance(raw, dict) else raw!r}.")
    kind = raw["type"]
    start = _parse_date(raw.get("startDate"), "startDate")
    out: dict[str, Any] = {
        "type": kind,
        "startDate": start.isoformat(),
        "endDate": NO_DATE,
        "recurrenceTimeZone": "",
        "numberOfOccurrences": 0,
    }
    if kind == "endDate":
        end = _parse_date(raw.get("endDate"), "endDate")
        if end < start:
            _fail("The recurrence range endDate must not be before startDate.")
        out["endDate"] = end.isoformat()
    elif not _filler_ok(raw.get("endDate"), NO_DATE):
        _fail("Recurrence range property 'endDate' is only supported for range type endDate.")
    if kind == "numbered":
        out["numberOfOccurrences"] = _int_field(raw.get("numberOfOccurrences"), "numberOfOccurrences", 1, 999)
    elif not _filler_ok(raw.get("numberOfOccurrences"), 0):
        _fail("Recurrence range property 'numberOfOccurrences' is only supported for range type numbered.")
    zone_name = raw.get("recurrenceTimeZone") or default_zone
    out["recurrenceTimeZone"] = windows_name(resolve_zone(zone_name))
    return out


def normalize_recurrence(raw: Any, default_zone: str) -> dict[str, Any]:
    """Validate a written recurrence; return it the way Graph returns it (all filler fields)."""
    if not isinstance(raw, dict):
        _fail("recurrence must be an object with pattern and range.")
    return {"pattern": _pattern(raw.get("pattern")), "range": _range(raw.get("range"), default_zone)}


def _month_days(day: int) -> tuple[list[int], int | None]:
    """bymonthday/bysetpos so day 29-31 falls back to the month's last day, as Outlook does."""
    if day <= 28:
        return [day], None
    return list(range(28, day + 1)), -1


def build_rule(rec: dict[str, Any], dtstart: datetime, *, cache: bool = False) -> rr.rrule:
    """The dateutil rule for a normalized recurrence, starting at local ``dtstart``.

    With ``cache`` the rule keeps the starts it has generated (dateutil's own cache), so asking it
    again walks a list instead of recomputing the series from its first start.
    """
    pat, rng = rec["pattern"], rec["range"]
    kwargs: dict[str, Any] = {"dtstart": dtstart, "interval": pat["interval"], "cache": cache}
    if rng["type"] == "endDate":
        kwargs["until"] = datetime.combine(date.fromisoformat(rng["endDate"]), time(23, 59, 59))
    elif rng["type"] == "numbered":
        kwargs["count"] = rng["numberOfOccurrences"]
    kind = pat["type"]
    days = [_RR_DAYS[d] for d in pat["daysOfWeek"]]
    if kind == "daily":
        return rr.rrule(rr.DAILY, **kwargs)
    if kind == "weekly":
        return rr.rrule(rr.WEEKLY, byweekday=days, wkst=_RR_DAYS[pat["firstDayOfWeek"]], **kwargs)
    freq: Any = rr.MONTHLY if kind.endswith("Monthly") else rr.YEARLY
    if kind.endswith("Yearly"):
        kwargs["bymonth"] = pat["month"]
    if kind.startswith("absolute"):
        monthdays, setpos = _month_days(pat["dayOfMonth"])
        return rr.rrule(freq, bymonthday=monthdays, bysetpos=setpos, **kwargs)
    return rr.rrule(freq, byweekday=days, bysetpos=INDEXES[pat["index"]], **kwargs)


def series_start(rec: dict[str, Any], time_of_day: time) -> datetime:
    """Local naive dtstart of a series: range.startDate at the event's wall-clock time."""
    return datetime.combine(date.fromisoformat(rec["range"]["startDate"]), time_of_day)


def first_occurrence(rec: dict[str, Any], dtstart: datetime) -> datetime | None:
    """The first local start of the series (None when the range yields nothing)."""
    value = build_rule(rec, dtstart).after(dtstart - timedelta(seconds=1), inc=True)
    return value if isinstance(value, datetime) else None


def occurrences_between(
    rec: dict[str, Any], dtstart: datetime, low: datetime, high: datetime
) -> list[datetime]:
    """Local starts with low <= start <= high; noEnd series stop at ``high`` (capped expansion)."""
    return [v for v in build_rule(rec, dtstart).between(low, high, inc=True) if isinstance(v, datetime)]


def is_occurrence(rec: dict[str, Any], dtstart: datetime, local: datetime) -> bool:
    """Whether ``local`` is exactly one of the series' starts."""
    # A delta page renders each plain occurrence after checking it still exists: building the rule
    # and walking it from the series' first start for every occurrence made a page of a long series
    # quadratic (the bulk of the emulator's time in a large Outlook initial sync). The rule is built
    # once per recurrence and start (the key is the recurrence's content, so an edited series gets a
    # new rule); ``local in rule`` is dateutil's membership test, the same answer as between(local,
    # local, inc=True) had.
    key = (repr(rec), dtstart)  # equal content in another key order only misses the cache
    rule = _RULES.get(key)
    if rule is None:
        if len(_RULES) >= 1024:
            _RULES.clear()
        rule = _RULES[key] = build_rule(rec, dtstart, cache=True)
    return local in rule


_RULES: dict[tuple[str, datetime], rr.rrule] = {}

"""Graph recurrence <-> RRULE: fixed cases, inexpressible rules, and Hypothesis properties with an oracle."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr
from hypothesis import given, settings
from hypothesis import strategies as st

from autosync.errors import NormalizeError
from autosync.normalize.recurrence import GRAPH_DAYS, graph_to_rrule, rrule_to_graph

BERLIN_9AM = datetime(2024, 5, 13, 7, tzinfo=UTC)


def rec(pattern: dict[str, Any], rng: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"pattern": pattern, "range": rng or {"type": "noEnd", "startDate": "2024-05-13"}}


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ({"type": "daily", "interval": 3}, "RRULE:FREQ=DAILY;INTERVAL=3"),
        (
            {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["friday"], "index": "last"},
            "RRULE:FREQ=MONTHLY;INTERVAL=1;BYDAY=-1FR",
        ),
        (
            {"type": "relativeMonthly", "interval": 2, "daysOfWeek": ["monday"], "index": "second"},
            "RRULE:FREQ=MONTHLY;INTERVAL=2;BYDAY=2MO",
        ),
        (
            {
                "type": "relativeMonthly",
                "interval": 1,
                "index": "first",
                "daysOfWeek": ["friday", "monday", "tuesday", "wednesday", "thursday"],
            },
            "RRULE:FREQ=MONTHLY;INTERVAL=1;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=1",
        ),
        (
            {"type": "absoluteYearly", "interval": 1, "month": 3, "dayOfMonth": 15, "index": "first"},
            "RRULE:FREQ=YEARLY;INTERVAL=1;BYMONTH=3;BYMONTHDAY=15",
        ),
        (
            {
                "type": "relativeYearly",
                "interval": 1,
                "month": 11,
                "daysOfWeek": ["thursday"],
                "index": "fourth",
                "dayOfMonth": 0,
            },
            "RRULE:FREQ=YEARLY;INTERVAL=1;BYMONTH=11;BYDAY=4TH",
        ),
        (
            {"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 31, "month": 0, "daysOfWeek": []},
            "RRULE:FREQ=MONTHLY;INTERVAL=1;BYMONTHDAY=31",
        ),
    ],
)
def test_graph_pattern_becomes_rrule_ignoring_filler_fields(pattern: dict[str, Any], expected: str) -> None:
    assert graph_to_rrule(rec(pattern), all_day=False, tz="Europe/Berlin") == expected


def test_numbered_range_becomes_count_and_all_day_end_date_a_date_until() -> None:
    weekly = {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"], "firstDayOfWeek": "monday"}
    numbered = {
        "type": "numbered",
        "startDate": "2024-05-13",
        "numberOfOccurrences": 10,
        "endDate": "0001-01-01",
    }
    assert graph_to_rrule(rec(weekly, numbered), all_day=False).endswith("BYDAY=MO;WKST=MO;COUNT=10")
    end_date = {
        "type": "endDate",
        "startDate": "2024-05-13",
        "endDate": "2024-06-30",
        "numberOfOccurrences": 0,
    }
    assert graph_to_rrule(rec(weekly, end_date), all_day=True).endswith(";UNTIL=20240630")


def test_end_date_until_is_the_end_of_that_day_in_the_recurrence_zone() -> None:
    end_date = {
        "type": "endDate",
        "startDate": "2017-09-04",
        "endDate": "2017-12-31",
        "recurrenceTimeZone": "Pacific Standard Time",
    }
    line = graph_to_rrule(rec({"type": "daily", "interval": 1}, end_date), all_day=False, tz="UTC")
    assert line == "RRULE:FREQ=DAILY;INTERVAL=1;UNTIL=20180101T075959Z"


@pytest.mark.parametrize(
    "lines",
    [
        ["RRULE:FREQ=HOURLY;INTERVAL=1"],
        ["RRULE:FREQ=DAILY;BYHOUR=9,17"],
        ["RRULE:FREQ=MONTHLY;BYDAY=MO,TU;BYSETPOS=1,2"],
        ["RRULE:FREQ=WEEKLY;BYDAY=MO", "EXRULE:FREQ=WEEKLY;BYDAY=MO;INTERVAL=2"],
        ["RRULE:FREQ=WEEKLY;BYDAY=MO", "RDATE;VALUE=DATE:20240704"],
        ["RRULE:FREQ=YEARLY;COUNT=5;BYDAY=-1SU,2SA;BYMONTH=6"],  # from the gdata sample
        ["RRULE:FREQ=MONTHLY;BYDAY=5FR"],
        ["RRULE:FREQ=MONTHLY;BYMONTHDAY=-1"],
        ["RRULE:FREQ=WEEKLY;BYDAY=1MO"],
        ["RRULE:FREQ=DAILY", "RRULE:FREQ=WEEKLY"],
        ["RRULE:FREQ=DAILY;COUNT=3;UNTIL=20240601T000000Z"],
    ],
)
def test_rrules_graph_cannot_express_raise(lines: list[str]) -> None:
    with pytest.raises(NormalizeError):
        rrule_to_graph(lines, BERLIN_9AM, "Europe/Berlin")


def test_rrule_to_graph_defaults_from_the_start_and_ignores_exdate() -> None:
    lines = ["RRULE:FREQ=MONTHLY;UNTIL=20241231T230000Z", "EXDATE;TZID=Europe/Berlin:20240613T090000"]
    assert rrule_to_graph(lines, BERLIN_9AM, "Europe/Berlin") == {
        "pattern": {"interval": 1, "dayOfMonth": 13, "type": "absoluteMonthly"},
        "range": {
            "type": "endDate",
            "startDate": "2024-05-13",
            "endDate": "2024-12-31",
            "recurrenceTimeZone": "W. Europe Standard Time",
        },
    }


def test_until_before_that_days_start_time_ends_the_series_the_day_before() -> None:
    # UNTIL 2024-06-30 00:00 Berlin: the 09:00 occurrence of June 30 is after it
    result = rrule_to_graph(["RRULE:FREQ=DAILY;UNTIL=20240629T220000Z"], BERLIN_9AM, "Europe/Berlin")
    assert result is not None and result["range"]["endDate"] == "2024-06-29"


def test_daily_rule_with_weekdays_becomes_weekly_and_default_wkst_is_monday() -> None:
    result = rrule_to_graph(["RRULE:FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR"], BERLIN_9AM, "Europe/Berlin")
    assert result is not None and result["pattern"] == {
        "type": "weekly",
        "interval": 1,
        "daysOfWeek": list(GRAPH_DAYS[:5]),
        "firstDayOfWeek": "monday",
    }


def test_no_rrule_means_no_graph_recurrence() -> None:
    assert rrule_to_graph(["EXDATE:20240520T070000Z"], BERLIN_9AM, "UTC") is None


# --- properties -------------------------------------------------------------------------------

INDEXES = ["first", "second", "third", "fourth", "last"]


@st.composite
def graph_recurrences(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(
            ["daily", "weekly", "absoluteMonthly", "relativeMonthly", "absoluteYearly", "relativeYearly"]
        )
    )
    pattern: dict[str, Any] = {
        "type": kind,
        "interval": draw(st.integers(1, 4 if "Yearly" not in kind else 2)),
    }
    if kind == "weekly" or kind.startswith("relative"):
        pattern["daysOfWeek"] = draw(
            st.lists(st.sampled_from(GRAPH_DAYS), min_size=1, max_size=7, unique=True)
        )
    if kind == "weekly":
        pattern["firstDayOfWeek"] = draw(st.sampled_from(GRAPH_DAYS))
    if kind.startswith("relative"):
        pattern["index"] = draw(st.sampled_from(INDEXES))
    if kind.startswith("absolute"):
        pattern["dayOfMonth"] = draw(st.integers(1, 28))  # 29-31: documented semantic gap
    if kind.endswith("Yearly"):
        pattern["month"] = draw(st.integers(1, 12))
    start = draw(st.dates(date(2000, 1, 1), date(2035, 12, 31)))
    rng: dict[str, Any] = {
        "type": draw(st.sampled_from(["noEnd", "numbered", "endDate"])),
        "startDate": start.isoformat(),
    }
    if rng["type"] == "numbered":
        rng["numberOfOccurrences"] = draw(st.integers(1, 12))
    if rng["type"] == "endDate":
        rng["endDate"] = (start + timedelta(days=draw(st.integers(0, 900)))).isoformat()
    filler = {"month": 0, "dayOfMonth": 0, "index": "first", "daysOfWeek": [], "firstDayOfWeek": "sunday"}
    return {"pattern": filler | pattern, "range": {"numberOfOccurrences": 0, "endDate": "0001-01-01"} | rng}


def _relevant(pattern: dict[str, Any]) -> dict[str, Any]:
    keys = {
        "daily": [],
        "weekly": ["daysOfWeek", "firstDayOfWeek"],
        "absoluteMonthly": ["dayOfMonth"],
        "relativeMonthly": ["daysOfWeek", "index"],
        "absoluteYearly": ["dayOfMonth", "month"],
        "relativeYearly": ["daysOfWeek", "index", "month"],
    }[pattern["type"]]
    out = {k: pattern[k] for k in ["type", "interval", *keys]}
    if "daysOfWeek" in out:
        out["daysOfWeek"] = sorted(out["daysOfWeek"])
    return out


ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/Los_Angeles",
    "Australia/Sydney",
    "Asia/Kolkata",
    "America/Sao_Paulo",
]


@settings(max_examples=150, deadline=None)
@given(graph_recurrences(), st.sampled_from(ZONES), st.booleans())
def test_graph_pattern_survives_rrule_and_back(recurrence: dict[str, Any], tz: str, all_day: bool) -> None:
    start_date = date.fromisoformat(recurrence["range"]["startDate"])
    line = graph_to_rrule(recurrence, all_day=all_day, tz=tz)
    start: date | datetime = (
        start_date if all_day else datetime.combine(start_date, time(9, 30), ZoneInfo(tz))
    )
    back = rrule_to_graph([line], start, tz)
    assert back is not None
    assert _relevant(back["pattern"]) == _relevant(recurrence["pattern"])
    rng = recurrence["range"]
    assert back["range"]["type"] == rng["type"] and back["range"]["startDate"] == rng["startDate"]
    if rng["type"] == "numbered":
        assert back["range"]["numberOfOccurrences"] == rng["numberOfOccurrences"]
    if rng["type"] == "endDate":
        assert back["range"]["endDate"] == rng["endDate"]
    assert all(
        k in {"type", "interval", "daysOfWeek", "firstDayOfWeek", "index", "dayOfMonth", "month"}
        for k in back["pattern"]
    )


def _nth(day: date, days: list[str], index: str) -> bool:
    """Is ``day`` the index-th day of its month whose weekday is in ``days``? (Graph's relative rule)."""
    last = calendar.monthrange(day.year, day.month)[1]
    hits = [d for d in range(1, last + 1) if GRAPH_DAYS[date(day.year, day.month, d).weekday()] in days]
    position = -1 if index == "last" else INDEXES.index(index)
    return len(hits) > abs(position) - (position < 0) and hits[position] == day.day


def _matches(pattern: dict[str, Any], start: date, day: date) -> bool:
    """Graph's documented pattern semantics, evaluated directly on one calendar day (the oracle)."""
    kind, interval = pattern["type"], pattern["interval"]
    months = (day.year - start.year) * 12 + day.month - start.month
    if kind == "daily":
        return (day - start).days % interval == 0
    if kind == "weekly":
        first = GRAPH_DAYS.index(pattern["firstDayOfWeek"])
        week_of = lambda d: d - timedelta(days=(d.weekday() - first) % 7)  # noqa: E731
        weeks = (week_of(day) - week_of(start)).days // 7
        return GRAPH_DAYS[day.weekday()] in pattern["daysOfWeek"] and weeks % interval == 0
    if kind == "absoluteMonthly":
        return day.day == pattern["dayOfMonth"] and months % interval == 0
    if kind == "relativeMonthly":
        return months % interval == 0 and _nth(day, pattern["daysOfWeek"], pattern["index"])
    if day.month != pattern["month"] or (day.year - start.year) % interval:
        return False
    if kind == "absoluteYearly":
        return day.day == pattern["dayOfMonth"]
    return _nth(day, pattern["daysOfWeek"], pattern["index"])


def _graph_dates(recurrence: dict[str, Any], limit: int) -> list[date]:
    pattern, rng = recurrence["pattern"], recurrence["range"]
    start = date.fromisoformat(rng["startDate"])
    end = date.fromisoformat(rng["endDate"]) if rng["type"] == "endDate" else date(2099, 12, 31)
    count = rng["numberOfOccurrences"] if rng["type"] == "numbered" else limit
    out: list[date] = []
    day = start
    while day <= end and len(out) < min(count, limit):
        if _matches(pattern, start, day):
            out.append(day)
        day += timedelta(days=1)
    return out


@settings(max_examples=120, deadline=None)
@given(graph_recurrences(), st.sampled_from(ZONES), st.booleans())
def test_rrule_expansion_equals_direct_expansion_of_graph_pattern(
    recurrence: dict[str, Any], tz: str, all_day: bool
) -> None:
    limit = 10
    expected = _graph_dates(recurrence, limit)
    if not expected:
        return  # nothing before endDate: no event would exist
    line = graph_to_rrule(recurrence, all_day=all_day, tz=tz)
    first = expected[0]
    dtstart = datetime.combine(first, time(0, 0) if all_day else time(9, 30))
    if not all_day:
        dtstart = dtstart.replace(tzinfo=ZoneInfo(tz))
    rule = rrulestr(line.removeprefix("RRULE:"), dtstart=dtstart)
    got = [occurrence.date() for _, occurrence in zip(range(limit), rule, strict=False)]
    assert got == expected

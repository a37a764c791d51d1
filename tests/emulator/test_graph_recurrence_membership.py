"""The Graph emulator's occurrence check: a rule built once per recurrence, the same answers as a fresh expansion."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from autosync.emulator.graph_recurrence import (
    is_occurrence,
    normalize_recurrence,
    occurrences_between,
    series_start,
)

PATTERNS: list[dict[str, Any]] = [
    {"type": "daily", "interval": 1},
    {"type": "daily", "interval": 3},
    {"type": "weekly", "interval": 1, "daysOfWeek": ["monday", "thursday"]},
    {"type": "weekly", "interval": 2, "daysOfWeek": ["sunday"], "firstDayOfWeek": "monday"},
    {"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 31},
    {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["friday"], "index": "last"},
    {"type": "absoluteYearly", "interval": 1, "month": 2, "dayOfMonth": 29},
]
RANGES: list[dict[str, Any]] = [
    {"type": "noEnd", "startDate": "2024-01-15"},
    {"type": "numbered", "startDate": "2024-01-15", "numberOfOccurrences": 7},
    {"type": "endDate", "startDate": "2024-01-15", "endDate": "2024-04-30"},
]


def _fresh(rec: dict[str, Any], dtstart: datetime, local: datetime) -> bool:
    """What the check answered before: expand the rule anew between ``local`` and ``local``."""
    return local in occurrences_between(rec, dtstart, local, local)


@settings(max_examples=300, deadline=None)
@given(pattern=st.sampled_from(PATTERNS), rng=st.sampled_from(RANGES), clock=st.sampled_from([time(0), time(9, 30)]),
       days=st.lists(st.integers(-5, 800), min_size=1, max_size=12), nudge=st.sampled_from([0, 0, 0, 1, 3600]))
def test_membership_matches_a_fresh_expansion(pattern: dict[str, Any], rng: dict[str, Any], clock: time,
                                              days: list[int], nudge: int) -> None:
    rec = normalize_recurrence({"pattern": pattern, "range": rng}, "UTC")
    dtstart = series_start(rec, clock)
    # In any order: the cached rule must answer earlier starts after having generated later ones.
    for day in days:
        local = dtstart + timedelta(days=day, seconds=nudge)
        assert is_occurrence(rec, dtstart, local) is _fresh(rec, dtstart, local)


def test_an_edited_recurrence_is_not_answered_from_the_old_rule() -> None:
    rec = normalize_recurrence({"pattern": {"type": "daily", "interval": 1},
                                "range": {"type": "noEnd", "startDate": "2024-03-01"}}, "UTC")
    dtstart = series_start(rec, time(9))
    second_day = dtstart + timedelta(days=1)
    assert is_occurrence(rec, dtstart, second_day)
    rec["pattern"]["interval"] = 2  # edited in place, as a PATCH of the stored series could
    assert not is_occurrence(rec, dtstart, second_day)
    assert is_occurrence(rec, dtstart, dtstart + timedelta(days=2))

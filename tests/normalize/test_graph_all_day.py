"""All-day Outlook series slots: Graph's originalStart is the creator's midnight in UTC (issues 2804, 7163)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autosync.normalize.outlook import event_from_graph

MASTER_ID = "AAMkMASTER="


def _instance(original: str, kind: str = "exception", start: str = "2024-06-06") -> dict:
    end = (date.fromisoformat(start) + timedelta(days=1)).isoformat()
    return {"id": "AAMkX=", "type": kind, "seriesMasterId": MASTER_ID, "isAllDay": True,
            "originalStart": original, "originalStartTimeZone": "UTC", "subject": "Gym",
            "start": {"dateTime": f"{start}T00:00:00.0000000", "timeZone": "UTC"},
            "end": {"dateTime": f"{end}T00:00:00.0000000", "timeZone": "UTC"}}


def _master(zone: str) -> object:
    return event_from_graph({
        "id": MASTER_ID, "type": "seriesMaster", "isAllDay": True, "subject": "Gym",
        "start": {"dateTime": "2024-06-05T00:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2024-06-06T00:00:00.0000000", "timeZone": "UTC"},
        "recurrence": {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["wednesday"]},
                       "range": {"type": "noEnd", "startDate": "2024-06-05", "recurrenceTimeZone": zone}}})


def test_the_recorded_west_coast_exception_keeps_its_day() -> None:
    # The values of microsoft-graph-docs issue 2804: created at UTC-7, third occurrence moved a day.
    event = event_from_graph(_instance("2018-06-06T07:00:00Z", start="2018-06-07"))
    assert event.original_start == date(2018, 6, 6) and event.start == date(2018, 6, 7)


@pytest.mark.parametrize(("original", "day"), [
    ("2024-06-04T22:00:00Z", date(2024, 6, 5)),   # UTC+2
    ("2024-06-04T14:00:00Z", date(2024, 6, 5)),   # UTC+10
    ("2024-06-04T11:00:00Z", date(2024, 6, 5)),   # UTC+13 (New Zealand summer, Tonga)
    ("2024-06-05T00:00:00Z", date(2024, 6, 5)),   # UTC
    ("2024-06-05T07:00:00Z", date(2024, 6, 5)),   # UTC-7
    ("2024-06-05T10:00:00Z", date(2024, 6, 5)),   # UTC-10 (Hawaii)
])
def test_an_exception_without_a_known_zone_reads_its_day_from_the_offset(original: str, day: date) -> None:
    assert event_from_graph(_instance(original)).original_start == day


def test_the_masters_recurrence_zone_decides_where_the_offset_is_ambiguous() -> None:
    # 11:00Z is midnight at UTC+13 (the next day) and at UTC-11 (the same day).
    assert event_from_graph(_instance("2024-06-04T11:00:00Z"), master=_master("Samoa Standard Time")
                            ).original_start == date(2024, 6, 5)
    assert event_from_graph(_instance("2024-06-05T11:00:00Z"), master=_master("UTC-11")).original_start \
        == date(2024, 6, 5)


def test_an_unmoved_occurrence_is_on_its_own_floating_day() -> None:
    event = event_from_graph(_instance("2024-06-04T14:00:00Z", kind="occurrence", start="2024-06-05"))
    assert event.original_start == date(2024, 6, 5)


ZONES = ["Pacific/Honolulu", "America/Anchorage", "America/Phoenix", "America/New_York", "America/St_Johns",
         "Atlantic/Azores", "UTC", "Europe/Berlin", "Africa/Johannesburg", "Asia/Kolkata", "Asia/Kathmandu",
         "Asia/Tokyo", "Australia/Brisbane", "Australia/Adelaide", "Pacific/Auckland", "Pacific/Chatham",
         "Pacific/Tongatapu"]


@given(day=st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31)), where=st.sampled_from(ZONES),
       known=st.booleans())
def test_every_inhabited_offset_reads_back_the_day_it_was_made_for(day: date, where: str, known: bool) -> None:
    midnight = datetime.combine(day, datetime.min.time(), ZoneInfo(where)).astimezone(UTC)
    item = _instance(midnight.strftime("%Y-%m-%dT%H:%M:%SZ"))
    master = _master(where) if known else None
    assert event_from_graph(item, master=master).original_start == day  # type: ignore[arg-type]

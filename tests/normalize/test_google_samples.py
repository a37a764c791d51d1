"""Every real Google event / events-list sample normalizes to the values a person reading it expects."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from autosync.model import Attachment, Attendee, Event, Organizer, Reminder
from autosync.normalize.google import event_from_google, page_from_google

SAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "provider-samples" / "google"


def _sample_files() -> list[Any]:
    if not SAMPLES.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"provider samples absent: {SAMPLES}"))]
    return sorted(SAMPLES.glob("event*.json"), key=lambda p: p.name)


def _normalize(path: Path) -> tuple[list[Event], list[Any], dict[str, Any]]:
    doc = json.loads(path.read_text())
    items = doc.get("items", [doc] if "id" in doc else [])
    events, skipped = page_from_google(
        items, default_reminders=doc.get("defaultReminders", ()), calendar_tz=doc.get("timeZone")
    )
    return events, skipped, doc


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _allday_exdate(events: list[Event]) -> None:
    (e,) = events
    assert e.all_day and (e.start, e.end) == (date(2012, 11, 27), date(2012, 11, 27))  # exclusive 28th
    assert e.recurrence == (
        "EXDATE;TZID=Europe/Helsinki:20121204T000000",
        "RRULE:FREQ=WEEKLY;UNTIL=20130225T000000Z;BYDAY=TU",
    )
    assert e.start_tz is None and e.status == "confirmed"


def _allday_meet(events: list[Event]) -> None:
    (e,) = events
    assert e.all_day and e.start == e.end == date(2006, 6, 10)
    assert e.organizer == Organizer("Eggs P. Seashell", "")  # no email in the source, not self
    assert e.conference is not None and e.conference.type == "hangoutsMeet"
    assert e.conference.uri == "https://meet.google.com/aaa-bbbb-ccc"
    data = json.loads(e.conference.data_json)
    assert data["conferenceId"] == "4c8e9483-4ae3-44eb-94d4-206c3a3bfa3d"
    assert e.conference.data_json == json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    assert e.attendees == (Attendee("attendee@example.com", "attendee name", "tentative", optional=True),)
    assert e.reminders == (Reminder("email", 20),) and not e.reminders_use_default
    assert e.updated == datetime(2006, 6, 8, 21, 5, 49, 138000, tzinfo=UTC)
    assert e.etag == '"2128312983238480"'


def _cancelled_2013(events: list[Event]) -> None:
    (e,) = events
    assert e.cancelled and e.recurring_event_id == "tlf9q8uk5vjl2i2868q36dpi28"
    assert e.original_start == utc(2013, 5, 8, 22)  # 16:00-06:00
    assert e.start is None and e.summary == ""


def _cancelled_no_parent(events: list[Event]) -> None:
    (e,) = events
    assert e.cancelled and e.recurring_event_id == "0cu25g99pfkhlfarupevcjc297"  # derived from the id
    assert e.original_start == utc(2021, 11, 23, 17)


def _timed_utc(event_type: str) -> Callable[[list[Event]], None]:
    def check(events: list[Event]) -> None:
        (e,) = events
        # Not a type MiPlanIt syncs: the page turns it into a deletion of its id (no row, old one gone) ...
        assert (e.ext_id, e.status, e.event_type, e.start, e.recurring_event_id) == (
            e.raw["id"], "cancelled", event_type, None, None)
        # ... while the reader itself reads it in full.
        full = event_from_google(e.raw)
        assert (full.start, full.end) == (utc(2006, 6, 10, 1, 2, 3), utc(2006, 6, 10, 2, 3, 4))
        assert full.event_type == event_type and full.status == "confirmed"  # no status -> confirmed

    return check


def _moved_allday_instance(events: list[Event]) -> None:
    (e,) = events
    assert e.recurring_event_id == "osndfnwejrgnejnsdjfwegjdfr"
    assert e.original_start == date(2006, 6, 25) and e.start == e.end == date(2006, 6, 26)


def _master_rdate(events: list[Event]) -> None:
    (e,) = events
    assert e.recurrence[0] == "RRULE:FREQ=YEARLY;COUNT=5;BYDAY=-1SU,2SA;BYMONTH=6"
    assert e.recurrence[1:] == ("RDATE;VALUE=DATE:20060812", "EXDATE;VALUE=DATE:20070609")


def _timed_full(events: list[Event]) -> None:
    (e,) = events
    # offset-less 18:00 read in its timeZone Europe/Berlin (CEST, +02:00)
    assert (e.start, e.end) == (utc(2006, 6, 10, 16), utc(2006, 6, 10, 18))
    assert (e.start_tz, e.end_tz) == ("Europe/Berlin", "Europe/Berlin")
    assert e.organizer == Organizer("", "")  # organizer.self -> the seed's empty organizer
    assert e.reminders_use_default and e.reminders == ()  # no calendar defaults given: overrides ignored
    assert e.attendees[1] == Attendee("attendee2@example.com", "", "tentative", resource=True)
    assert e.attachments == (
        Attachment(
            "Attachment",
            "https://example.com/drive-url",
            "text/plain",
            "97e46c33-3fc7-4fb8-93d9-5e0f532d972f",
        ),
    )
    assert e.html_link == "https://example.com/calendar/event?eid=eventhash"


def _no_end(events: list[Event]) -> None:
    (e,) = events
    assert e.start == e.end == utc(2006, 6, 10, 1, 2, 3)  # endTimeUnspecified, no end object


def _incremental_cancelled(events: list[Event]) -> None:
    master, cancelled = events
    assert master.start == utc(2025, 2, 9, 14) and master.start_tz == "America/Chicago"
    assert master.reminders_use_default and master.reminders == (Reminder("popup", 30),)  # calendar default
    assert master.recurrence == ("RRULE:FREQ=DAILY;UNTIL=20250401T045959Z",)
    assert cancelled.cancelled and cancelled.recurring_event_id == master.ext_id
    assert cancelled.original_start == utc(2025, 3, 25, 13)


def _incremental_modified(events: list[Event]) -> None:
    master, instance = events
    assert instance.recurring_event_id == master.ext_id and instance.summary.endswith("(Modified)")
    assert instance.original_start == utc(2025, 3, 24, 12, 30) and instance.start == utc(2025, 3, 24, 17, 30)
    assert instance.recurrence == ()


def _series_deleted(events: list[Event]) -> None:
    (e,) = events
    assert e.cancelled and e.recurring_event_id is None and e.original_start is None
    assert e.etag == '"3485816133011294"'


def _split(events: list[Event]) -> None:
    old, new = events
    assert old.recurrence == ("RRULE:FREQ=DAILY;UNTIL=20250327T045959Z",)
    assert new.ext_id.endswith("_R20250327T123000") and new.recurring_event_id is None  # a new series
    assert new.start == utc(2025, 3, 27, 12, 30)


EXPECTED: dict[str, Callable[[list[Event]], None]] = {
    "event-allday-exdate-tzid-mismatch-gcal-sync.json": _allday_exdate,
    "event-allday-hangoutsmeet-gdata.json": _allday_meet,
    "event-cancelled-instance-2013-no-timezone-compass.json": _cancelled_2013,
    "event-cancelled-instance-id-without-recurringeventid-compass.json": _cancelled_no_parent,
    "event-focustime-gdata.json": _timed_utc("focusTime"),
    "event-outofoffice-gdata.json": _timed_utc("outOfOffice"),
    "event-recurring-instance-moved-allday-gdata.json": _moved_allday_instance,
    "event-recurring-master-rrule-rdate-exdate-gdata.json": _master_rdate,
    "event-timed-attendees-reminders-attachments-gdata.json": _timed_full,
    "event-utc-no-end-gdata.json": _no_end,
    "events-incremental-cancelled-instance-compass.json": _incremental_cancelled,
    "events-incremental-modified-instance-compass.json": _incremental_modified,
    "events-incremental-series-deleted-minimal-compass.json": _series_deleted,
    "events-incremental-this-and-following-split-compass.json": _split,
    "events-list-nextpagetoken-docs-snippet.json": lambda events: None,
}


@pytest.mark.parametrize("path", _sample_files(), ids=lambda p: getattr(p, "name", "absent"))
def test_google_sample_normalizes_to_expected_values(path: Path) -> None:
    events, skipped, doc = _normalize(path)
    assert skipped == []
    assert len(events) == len(doc.get("items", [doc] if "id" in doc else []))
    assert path.name in EXPECTED, f"new sample {path.name}: add its expected values"
    EXPECTED[path.name](events)


@pytest.mark.parametrize("path", _sample_files(), ids=lambda p: getattr(p, "name", "absent"))
def test_google_sample_times_are_utc_and_ordered(path: Path) -> None:
    events, _, _ = _normalize(path)
    for e in events:
        assert e.raw is not None and e.raw["id"] == e.ext_id
        if e.start is None:
            assert e.cancelled
            continue
        assert e.end is not None
        if e.all_day:
            assert type(e.start) is date and type(e.end) is date and e.start <= e.end
        else:
            assert isinstance(e.start, datetime) and isinstance(e.end, datetime)
            assert e.start.utcoffset() is not None and e.start.utcoffset().total_seconds() == 0
            assert e.start <= e.end

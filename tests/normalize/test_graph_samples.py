"""Every real Microsoft Graph event sample normalizes to the values a person reading it expects."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from autosync.model import Attendee, Event, Organizer, Reminder
from autosync.normalize.outlook import occurrence_refs, page_from_graph

SAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "provider-samples" / "graph"


def _sample_files() -> list[Any]:
    if not SAMPLES.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"provider samples absent: {SAMPLES}"))]
    return sorted(
        (p for p in SAMPLES.glob("*.json") if not p.name.startswith("error-")), key=lambda p: p.name
    )


def _items(doc: dict[str, Any]) -> list[Any]:
    if "value" in doc:
        return list(doc["value"])
    return [doc.get("event", doc)]  # an eventMessage carries its event expanded


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


class Page:
    """One normalized page: events, skipped, removed ids and occurrence refs."""

    def __init__(self, path: Path) -> None:
        self.items = _items(json.loads(path.read_text()))
        self.events, self.skipped, self.removed = page_from_graph(self.items)
        self.refs = occurrence_refs(self.items)

    @property
    def one(self) -> Event:
        (event,) = self.events
        return event


def _mattermost(page: Page) -> None:
    e = page.one
    assert (e.start, e.end) == (utc(2020, 4, 14, 20, 30), utc(2020, 4, 15, 1))
    assert e.start_tz == "America/Los_Angeles"  # originalStartTimeZone "Pacific Standard Time"
    assert e.location == "" and e.conference is None  # isOnlineMeeting false
    assert e.organizer == Organizer("First Last", "useremail@test.onmicrosoft.com")
    assert e.reminders == (Reminder("popup", 15),)
    assert e.updated == datetime(2020, 4, 14, 20, 33, 34, 289101, tzinfo=UTC)  # 7 digits truncated


def _delta_p1(page: Page) -> None:
    first, second = page.events
    assert first.summary == "Plan shopping list" and first.start == utc(2016, 12, 9, 20, 30)
    assert second.end == utc(2016, 12, 10, 2) and second.etag == 'W/"EZ9r3czxY0m2jz8c45czkwAAFXcvIg=="'


def _delta_p2(page: Page) -> None:
    assert [e.summary for e in page.events] == ["Get food", "Prepare food"]
    assert page.events[1].end == utc(2016, 12, 11)


def _delta_p3(page: Page) -> None:
    assert page.one.location == "Home" and page.one.start == utc(2016, 12, 12, 2)


def _delta_removed(page: Page) -> None:
    assert page.removed == ["AAMkADk0MGFkODE3LWE4MmYtNDRhOS04OGQLkRkXbBznTvAADb6ytyAAA="]
    assert page.one.summary == "Attend service" and page.one.location == "Chapel of Saint Ignatius"


def _series_enddate(page: Page) -> None:
    e = page.one
    # 12:00 Pacific (PDT, -07:00) on 2017-09-04
    assert (e.start, e.end) == (utc(2017, 9, 4, 19), utc(2017, 9, 4, 21))
    # filler month/dayOfMonth/index/numberOfOccurrences ignored; UNTIL = 2017-12-31 23:59:59 PST in UTC
    assert e.recurrence == ("RRULE:FREQ=WEEKLY;INTERVAL=1;BYDAY=MO;WKST=SU;UNTIL=20180101T075959Z",)
    assert e.remove_child_instances and e.remove_cancelled_instances and e.excluded_dates == ()
    assert e.conference is not None and (e.conference.type, e.conference.uri) == ("unknown", "")
    assert e.attendees == (Attendee("AdeleV@contoso.onmicrosoft.com", "Adele Vance", "needsAction"),)


def _single_full(page: Page) -> None:
    e = page.one
    assert (e.start, e.end) == (utc(2017, 4, 15, 18), utc(2017, 4, 15, 19))
    assert e.description == "Does late morning work for you?"  # the text a reader sees, not the markup
    assert e.recurrence == () and not e.remove_child_instances
    assert e.html_link.startswith("https://outlook.office365.com/owa/?itemid=AAMkAGI1AAAt9AHjAAA%3D")


def _teams(join_prefix: str) -> Callable[[Page], None]:
    def check(page: Page) -> None:
        c = page.one.conference
        assert c is not None and c.type == "teamsForBusiness" and c.uri.startswith(join_prefix)
        data = json.loads(c.data_json)
        assert (
            data["onlineMeetingProvider"] == "teamsForBusiness" and data["onlineMeeting"]["joinUrl"] == c.uri
        )

    return check


def _proposed(page: Page) -> None:
    e = page.one
    assert [a.status for a in e.attendees] == ["needsAction", "tentative"]  # tentativelyAccepted
    assert e.start == utc(2017, 4, 21, 17) and e.start_tz == "America/Los_Angeles"  # from start.timeZone


def _multiple_locations(page: Page) -> None:
    assert page.one.location == "Conf Room 3; Fourth Coffee; Home Office"


def _organizer_view(page: Page) -> None:
    e = page.one
    assert [(a.email, a.status) for a in e.attendees] == [
        ("MeganB@contoso.OnMicrosoft.com", "needsAction"),
        ("ChristieC@contoso.OnMicrosoft.com", "tentative"),
    ]
    assert e.etag == 'W/"NEXywgsVrkeNsFsyVyRrtAAAX8xuhA=="'


def _series_noend(page: Page) -> None:
    e = page.one
    assert e.recurrence == ("RRULE:FREQ=WEEKLY;INTERVAL=1;BYDAY=TU,TH;WKST=SU",)  # noEnd: no UNTIL/COUNT
    assert e.start_tz == "America/New_York" and e.start == utc(2017, 8, 15, 14, 30)
    assert e.attendees[0].status == "accepted"
    assert e.etag == 'W/"xPZF2y46pEiVBni87OnrpgAAAAAJTg=="'  # only changeKey in the source


def _instances(page: Page) -> None:
    exception = page.one  # the three plain occurrences are not events
    assert exception.recurring_event_id == "AAMkAGUzYRgWAAA=" and exception.start == utc(2019, 4, 16, 20, 30)
    assert [(ref[1], ref[2]) for ref in page.refs] == [
        ("AAMkAGUzYRgWAAA=", utc(2019, 4, 8, 20, 30)),
        ("AAMkAGUzYRgWAAA=", utc(2019, 4, 22, 20, 30)),
        ("AAMkAGUzYRgWAAA=", utc(2019, 4, 29, 20, 30)),
    ]


def _attendee_copy(page: Page) -> None:
    e = page.one
    assert e.status == "tentative"  # showAs tentative on the attendee's copy
    assert e.organizer == Organizer("Alex Wilber", "AlexW@contoso.OnMicrosoft.com")


def _group_text_body(page: Page) -> None:
    assert len(page.events) == 2 and page.events[0].description.startswith("Meeting to plan new trainings.")
    assert page.events[1].start == utc(2017, 8, 16, 21)


EXPECTED: dict[str, Callable[[Page], None]] = {
    "calendarview-real-capture-mattermost.json": _mattermost,
    "delta-calendarview-r1-p1-nextlink.json": _delta_p1,
    "delta-calendarview-r1-p2-nextlink.json": _delta_p2,
    "delta-calendarview-r1-p3-deltalink.json": _delta_p3,
    "delta-calendarview-r2-removed-and-updated.json": _delta_removed,
    "event-create-seriesmaster-weekly-enddate.json": _series_enddate,
    "event-create-singleinstance-full.json": _single_full,
    "event-create-teams-online-meeting.json": _teams(
        "https://teams.microsoft.com/l/meetup-join/19%3ameeting_NzIy"
    ),
    "event-get-attendees-proposednewtime-pst.json": _proposed,
    "event-get-multiple-locations.json": _multiple_locations,
    "event-get-organizer-view-attendee-responses.json": _organizer_view,
    "event-get-seriesmaster-noend-group.json": _series_noend,
    "event-get-teams-meeting-real-capture-cli-m365.json": _teams(
        "https://teams.microsoft.com/l/meetup-join/19%3a"
    ),
    "event-instances-occurrence-and-exception.json": _instances,
    "eventmessage-with-expanded-event-attendee-copy.json": _attendee_copy,
    "group-calendarview-page-nextlink-text-body.json": _group_text_body,
}


# A $select answer that left out start and end: a real Graph shape, but nothing that can become a
# cal_event row (the storage rule needs its times), so the importer refuses it with the reason.
PARTIAL = {"event-get-online-meeting-select-only.json"}


@pytest.mark.parametrize("path", _sample_files(), ids=lambda p: getattr(p, "name", "absent"))
def test_graph_sample_normalizes_to_expected_values(path: Path) -> None:
    page = Page(path)
    if path.name in PARTIAL:
        assert [(s.ext_id, s.reason) for s in page.skipped] == [(page.items[0]["id"], "missing start or end")]
        return
    assert page.skipped == []
    assert path.name in EXPECTED, f"new sample {path.name}: add its expected values"
    EXPECTED[path.name](page)


@pytest.mark.parametrize("path", _sample_files(), ids=lambda p: getattr(p, "name", "absent"))
def test_graph_sample_times_are_utc_and_every_item_is_accounted_for(path: Path) -> None:
    page = Page(path)
    assert len(page.events) + len(page.removed) + len(page.refs) + len(page.skipped) == len(page.items)
    for e in page.events:
        assert e.raw is not None and e.raw["id"] == e.ext_id
        assert isinstance(e.start, datetime) and isinstance(e.end, datetime) and e.start <= e.end
        assert e.start.utcoffset() is not None and e.start.utcoffset().total_seconds() == 0


def test_select_only_item_without_times_is_skipped_not_stored_without_dates() -> None:
    if not SAMPLES.is_dir():
        pytest.skip(f"provider samples absent: {SAMPLES}")
    page = Page(SAMPLES / "event-get-online-meeting-select-only.json")
    assert page.events == [] and page.skipped[0].ext_id == "AAMkADAGu0AABIGYDZAAA="


def test_all_day_sample_shape_is_floating_and_inclusive() -> None:
    item = {
        "id": "AAMkAllDay=",
        "isAllDay": True,
        "start": {"dateTime": "2024-06-03T00:00:00.0000000", "timeZone": "Pacific Standard Time"},
        "end": {"dateTime": "2024-06-05T00:00:00.0000000", "timeZone": "Pacific Standard Time"},
        "originalStartTimeZone": "Pacific Standard Time",
    }
    events, _, _ = page_from_graph([item])
    assert (events[0].start, events[0].end) == (date(2024, 6, 3), date(2024, 6, 4))
    assert events[0].start_tz is None

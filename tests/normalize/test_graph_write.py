"""Event -> Graph body: wire shape, round trips through a simulated Graph echo, malformed items."""

from __future__ import annotations

import copy
import dataclasses
from datetime import UTC, date, datetime
from typing import Any

import pytest

from autosync.errors import NormalizeError
from autosync.model import Attendee, Conference, Event, Reminder
from autosync.normalize.outlook import event_from_graph, graph_body, page_from_graph
from autosync.normalize.timezones import zone

PATTERN_FILLER = {"month": 0, "dayOfMonth": 0, "daysOfWeek": [], "firstDayOfWeek": "sunday", "index": "first"}
RANGE_FILLER = {"endDate": "0001-01-01", "numberOfOccurrences": 0, "recurrenceTimeZone": "UTC"}


def graph_echo(body: dict[str, Any], ext_id: str, *, render_utc: bool = True) -> dict[str, Any]:
    """What Graph returns for a body it accepted: ids, UTC times (no Prefer), filler recurrence fields."""
    item = copy.deepcopy(body) | {"id": ext_id, "@odata.etag": 'W/"ck1"', "changeKey": "ck1"}
    item["type"] = "seriesMaster" if "recurrence" in body else "singleInstance"
    item["originalStartTimeZone"] = body["start"]["timeZone"]
    item["originalEndTimeZone"] = body["end"]["timeZone"]
    item["attendees"] = [
        a | {"status": {"response": "none", "time": "0001-01-01T00:00:00Z"}} for a in body["attendees"]
    ]
    if render_utc and not body["isAllDay"]:
        for key in ("start", "end"):
            local = datetime.fromisoformat(body[key]["dateTime"]).replace(tzinfo=zone(body[key]["timeZone"]))
            item[key] = {
                "dateTime": local.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000"),
                "timeZone": "UTC",
            }
    if "recurrence" in body:  # provider rule 40: responses carry every field, relevant or not
        item["recurrence"] = {
            "pattern": PATTERN_FILLER | body["recurrence"]["pattern"],
            "range": RANGE_FILLER | body["recurrence"]["range"],
        }
    return item


TIMED = Event(
    ext_id="AAMk1=",
    summary="Design review",
    description="<p>Agenda</p>",
    location="Room 4.2",
    start=datetime(2024, 5, 10, 7, tzinfo=UTC),
    end=datetime(2024, 5, 10, 8, 30, tzinfo=UTC),
    start_tz="Europe/Berlin",
    end_tz="Europe/Berlin",
    attendees=(
        Attendee("bob@contoso.com", "Bob"),
        Attendee("carol@contoso.com", "Carol", optional=True),
        Attendee("room@contoso.com", "Room", resource=True),
    ),
    reminders=(Reminder("popup", 15),),
    etag='W/"ck1"',
)
ALL_DAY = Event(
    ext_id="AAMk2=",
    summary="Offsite",
    all_day=True,
    start=date(2024, 6, 3),
    end=date(2024, 6, 4),
    status="tentative",
    etag='W/"ck1"',
)
SERIES = dataclasses.replace(
    TIMED,
    ext_id="AAMk3=",
    start=datetime(2024, 5, 13, 7, tzinfo=UTC),
    end=datetime(2024, 5, 13, 7, 15, tzinfo=UTC),
    recurrence=("RRULE:FREQ=WEEKLY;INTERVAL=1;BYDAY=MO,WE,FR;WKST=SU;UNTIL=20240628T215959Z",),
    remove_child_instances=True,
    remove_cancelled_instances=True,
)


@pytest.mark.parametrize("render_utc", [True, False], ids=["utc-rendered", "zone-rendered"])
@pytest.mark.parametrize("event", [TIMED, ALL_DAY, SERIES], ids=["timed", "all-day", "series"])
def test_graph_body_round_trips_to_the_same_event(event: Event, render_utc: bool) -> None:
    assert event_from_graph(graph_echo(graph_body(event), event.ext_id, render_utc=render_utc)) == event


def test_timed_body_sends_wall_time_and_windows_zone() -> None:
    body = graph_body(TIMED)
    assert body["start"] == {"dateTime": "2024-05-10T09:00:00", "timeZone": "W. Europe Standard Time"}
    assert body["end"] == {"dateTime": "2024-05-10T10:30:00", "timeZone": "W. Europe Standard Time"}
    assert body["attendees"][1] == {
        "emailAddress": {"address": "carol@contoso.com", "name": "Carol"},
        "type": "optional",
    }
    assert body["isReminderOn"] is True and body["reminderMinutesBeforeStart"] == 15
    # The app's description is plain text, even when it looks like markup: Outlook must show it as typed.
    assert body["body"] == {"contentType": "text", "content": "<p>Agenda</p>"}


def test_all_day_body_runs_midnight_to_exclusive_midnight() -> None:
    body = graph_body(ALL_DAY)
    assert body["isAllDay"] is True
    assert body["start"] == {"dateTime": "2024-06-03T00:00:00", "timeZone": "UTC"}
    assert body["end"] == {"dateTime": "2024-06-05T00:00:00", "timeZone": "UTC"}
    assert body["showAs"] == "tentative" and body["isReminderOn"] is False


def test_series_body_sends_only_relevant_recurrence_fields() -> None:
    assert graph_body(SERIES)["recurrence"] == {
        "pattern": {
            "type": "weekly",
            "interval": 1,
            "daysOfWeek": ["monday", "wednesday", "friday"],
            "firstDayOfWeek": "sunday",
        },
        "range": {
            "type": "endDate",
            "startDate": "2024-05-13",
            "endDate": "2024-06-28",
            "recurrenceTimeZone": "W. Europe Standard Time",
        },
    }


def test_exception_body_carries_no_recurrence() -> None:
    exception = dataclasses.replace(SERIES, recurring_event_id="AAMk3=", ext_id="AAMk4=")
    assert "recurrence" not in graph_body(exception)


def test_teams_conference_is_requested_by_provider_name() -> None:
    event = dataclasses.replace(TIMED, conference=Conference("teamsForBusiness", ""))
    body = graph_body(event)
    assert body["isOnlineMeeting"] is True and body["onlineMeetingProvider"] == "teamsForBusiness"
    assert "isOnlineMeeting" not in graph_body(
        dataclasses.replace(TIMED, conference=Conference("hangoutsMeet", "u"))
    )


def test_inexpressible_rrule_raises_with_the_event_id() -> None:
    event = dataclasses.replace(SERIES, recurrence=("RRULE:FREQ=HOURLY;INTERVAL=2",))
    with pytest.raises(NormalizeError) as info:
        graph_body(event)
    assert info.value.ext_id == "AAMk3=" and "HOURLY" in info.value.reason


def test_repeated_wall_hour_is_written_in_utc_to_keep_the_instant() -> None:
    # 2024-10-27 01:30 UTC is 02:30 CET, the second 02:30 in Berlin that night
    event = dataclasses.replace(
        TIMED, start=datetime(2024, 10, 27, 1, 30, tzinfo=UTC), end=datetime(2024, 10, 27, 3, tzinfo=UTC)
    )
    body = graph_body(event)
    assert body["start"] == {"dateTime": "2024-10-27T01:30:00", "timeZone": "UTC"}
    assert event_from_graph(graph_echo(body, "x")).start == event.start


def test_custom_zone_falls_back_to_the_event_time_zone() -> None:
    item = {
        "id": "c1",
        "originalStartTimeZone": "tzone://Microsoft/Custom",
        "start": {"dateTime": "2024-01-10T09:00:00.0000000", "timeZone": "Eastern Standard Time"},
        "end": {"dateTime": "2024-01-10T10:00:00.0000000", "timeZone": "Eastern Standard Time"},
    }
    event = event_from_graph(item)
    assert event.start == datetime(2024, 1, 10, 14, tzinfo=UTC) and event.start_tz == "America/New_York"


def test_exception_inherits_missing_fields_from_its_master() -> None:
    master = event_from_graph(graph_echo(graph_body(SERIES), "AAMk3="))
    exception = {
        "id": "ex1",
        "type": "exception",
        "seriesMasterId": "AAMk3=",
        "subject": "Moved",
        "originalStart": "2024-05-15T07:00:00Z",
        "start": {"dateTime": "2024-05-15T09:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2024-05-15T09:15:00.0000000", "timeZone": "UTC"},
    }
    events, skipped, removed = page_from_graph([exception], masters={"AAMk3=": master})
    (e,) = events
    assert e.summary == "Moved" and e.attendees == master.attendees and e.location == "Room 4.2"
    assert e.original_start == datetime(2024, 5, 15, 7, tzinfo=UTC) and e.recurrence == ()
    assert skipped == [] and removed == []


def test_page_with_master_and_bare_occurrences_yields_only_the_master() -> None:
    master = graph_echo(graph_body(SERIES), "AAMk3=")
    bare = {
        "@odata.type": "#microsoft.graph.event",
        "id": "occ1",
        "seriesMasterId": "AAMk3=",
        "type": "occurrence",
        "start": {"dateTime": "2024-05-15T07:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2024-05-15T07:15:00.0000000", "timeZone": "UTC"},
    }
    removed = {"@odata.type": "#microsoft.graph.event", "id": "gone1", "@removed": {"reason": "deleted"}}
    events, skipped, removed_ids = page_from_graph([bare, master, removed])
    assert [e.ext_id for e in events] == ["AAMk3="] and skipped == [] and removed_ids == ["gone1"]


GOOD = {
    "id": "good1",
    "subject": "ok",
    "start": {"dateTime": "2024-05-10T07:00:00.0000000", "timeZone": "UTC"},
    "end": {"dateTime": "2024-05-10T08:00:00.0000000", "timeZone": "UTC"},
}


@pytest.mark.parametrize(
    ("item", "ext_id", "reason"),
    [
        ({"subject": "no id"}, "", "missing id"),
        (["not", "a", "dict"], "", "not a JSON object"),
        (
            GOOD | {"id": "bad1", "start": {"dateTime": "2024-05-10T99:00:00", "timeZone": "UTC"}},
            "bad1",
            "bad start",
        ),
        (
            GOOD | {"id": "bad2", "end": {"dateTime": "2024-05-10T06:00:00.0000000", "timeZone": "UTC"}},
            "bad2",
            "before start",
        ),
        (GOOD | {"id": "bad3", "end": None}, "bad3", "missing start or end"),
        (
            GOOD | {"id": "bad4", "type": "seriesMaster", "recurrence": {"pattern": {"type": "hourly"}}},
            "bad4",
            "pattern type",
        ),
    ],
)
def test_malformed_graph_item_is_skipped_while_good_items_still_normalize(
    item: Any, ext_id: str, reason: str
) -> None:
    events, skipped, _ = page_from_graph([GOOD, item, GOOD | {"id": "good2"}])
    assert [e.ext_id for e in events] == ["good1", "good2"]
    assert len(skipped) == 1 and skipped[0].ext_id == ext_id and reason in skipped[0].reason


def test_attendee_responses_map_to_google_vocabulary_and_attachments_are_read() -> None:
    def attendee(address: str, response: str, kind: str = "required") -> dict[str, Any]:
        return {
            "type": kind,
            "status": {"response": response},
            "emailAddress": {"address": address, "name": ""},
        }

    item = GOOD | {
        "attendees": [
            attendee("a@x", "accepted"),
            attendee("b@x", "tentativelyAccepted", "optional"),
            attendee("c@x", "declined"),
            attendee("d@x", "notResponded", "resource"),
            attendee("e@x", "organizer"),
        ],
        "attachments": [
            {
                "@odata.type": "#microsoft.graph.fileAttachment",
                "id": "att1",
                "name": "a.pdf",
                "contentType": "application/pdf",
                "size": 1234,
            }
        ],
        "isReminderOn": False,
        "reminderMinutesBeforeStart": 15,
    }
    event = event_from_graph(item)
    assert [(a.email, a.status, a.optional, a.resource, a.organizer) for a in event.attendees] == [
        ("a@x", "accepted", False, False, False),
        ("b@x", "tentative", True, False, False),
        ("c@x", "declined", False, False, False),
        ("d@x", "needsAction", False, True, False),
        ("e@x", "accepted", False, False, True),
    ]
    (att,) = event.attachments
    assert (att.title, att.mime_type, att.size, att.file_id) == ("a.pdf", "application/pdf", 1234, "att1")
    assert event.reminders == ()  # isReminderOn false


def test_cancelled_occurrences_become_excluded_dates_and_exdates() -> None:
    item = graph_echo(graph_body(SERIES), "AAMk3=") | {
        "cancelledOccurrences": ["OID.AAMk3=.2024-05-15", "OID.AAMk3=.2024-05-20", "garbage"]
    }
    event = event_from_graph(item)
    assert event.excluded_dates == (date(2024, 5, 15), date(2024, 5, 20))
    assert event.recurrence[1:] == (
        "EXDATE;TZID=Europe/Berlin:20240515T090000",
        "EXDATE;TZID=Europe/Berlin:20240520T090000",
    )

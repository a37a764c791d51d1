"""Event -> Google body round trips, PATCH array merging (provider rule 27), and malformed-item handling."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from typing import Any

import pytest

from autosync.errors import NormalizeError
from autosync.model import Attachment, Attendee, Conference, Event, Reminder, Skipped
from autosync.normalize.google import event_from_google, google_body, google_patch, page_from_google

DEFAULTS = [{"method": "popup", "minutes": 30}]


def echo(event: Event) -> Event:
    """What Google would hand back for the body we sent (id assigned, defaults resolved)."""
    item = google_body(event) | {"id": event.ext_id}
    return event_from_google(item, default_reminders=DEFAULTS, calendar_tz="UTC")


TIMED = Event(
    ext_id="timed1",
    summary="Design review",
    description="<b>Agenda</b>",
    location="Room 4.2",
    start=datetime(2024, 5, 10, 7, tzinfo=UTC),
    end=datetime(2024, 5, 10, 8, tzinfo=UTC),
    start_tz="Europe/Berlin",
    end_tz="Europe/Berlin",
    attendees=(Attendee("bob@example.org", "Bob", "accepted"), Attendee("room@r.example", "", resource=True)),
    reminders=(Reminder("popup", 10), Reminder("email", 60)),
    attachments=(Attachment("Spec.pdf", "https://drive.google.com/open?id=1", "application/pdf"),),
    conference=Conference(
        "hangoutsMeet",
        "https://meet.google.com/abc",
        '{"conferenceId":"abc",'
        '"conferenceSolution":{"key":{"type":"hangoutsMeet"}},'
        '"entryPoints":[{"entryPointType":"video","uri":"https://meet.google.com/abc"}]}',
    ),
)
ALL_DAY = Event(
    ext_id="allday1",
    summary="Offsite",
    all_day=True,
    start=date(2024, 6, 3),
    end=date(2024, 6, 4),
    reminders_use_default=True,
    reminders=(Reminder("popup", 30),),
    status="tentative",
)
RECURRING = dataclasses.replace(
    TIMED,
    ext_id="series1",
    recurrence=(
        "RRULE:FREQ=WEEKLY;BYDAY=MO,WE;UNTIL=20240630T215959Z",
        "EXDATE;TZID=Europe/Berlin:20240520T090000",
    ),
)


@pytest.mark.parametrize("event", [TIMED, ALL_DAY, RECURRING], ids=["timed", "all-day", "recurring"])
def test_google_body_round_trips_to_the_same_event(event: Event) -> None:
    assert echo(event) == event


def test_all_day_body_uses_the_exclusive_end_date() -> None:
    body = google_body(ALL_DAY)
    assert body["start"] == {"date": "2024-06-03"} and body["end"] == {"date": "2024-06-05"}
    assert body["reminders"] == {"useDefault": True}


def test_timed_body_renders_wall_time_with_offset_in_the_event_zone() -> None:
    body = google_body(TIMED)
    assert body["start"] == {"dateTime": "2024-05-10T09:00:00+02:00", "timeZone": "Europe/Berlin"}
    assert body["attendees"][1] == {
        "email": "room@r.example",
        "responseStatus": "needsAction",
        "optional": False,
        "resource": True,
    }
    assert body["conferenceData"]["conferenceId"] == "abc"


def test_timed_event_without_zone_is_written_in_utc() -> None:
    event = dataclasses.replace(TIMED, start_tz=None, end_tz=None)
    assert google_body(event)["end"] == {"dateTime": "2024-05-10T08:00:00+00:00", "timeZone": "UTC"}


PROVIDER = {
    "id": "timed1",
    "attendees": [
        {"email": "Bob@Example.org", "responseStatus": "declined", "comment": "busy", "id": "a1"},
        {"email": "me@example.com", "self": True, "responseStatus": "needsAction"},
        {"email": "carol@example.org", "responseStatus": "accepted"},  # added in Google, unknown to the app
        {"email": "dave@example.org", "responseStatus": "accepted"},
    ],
    "reminders": {
        "useDefault": False,
        "overrides": [{"method": "popup", "minutes": 10}, {"method": "sms", "minutes": 5}],
    },
    "attachments": [{"fileUrl": "https://drive.google.com/open?id=9", "title": "Provider only"}],
}


def test_patch_contains_only_the_changed_fields() -> None:
    assert google_patch(PROVIDER, TIMED, {"summary"}) == {"summary": "Design review"}
    assert set(google_patch(PROVIDER, TIMED, {"start_tz"})) == {"start", "end"}


def test_patch_keeps_provider_only_attendees_and_their_responses() -> None:
    base = dataclasses.replace(TIMED, attendees=(Attendee("bob@example.org"), Attendee("dave@example.org")))
    event = dataclasses.replace(
        TIMED,
        attendees=(
            Attendee("bob@example.org", "Robert", "accepted"),
            Attendee("me@example.com", "", "accepted"),
        ),
    )
    merged = google_patch(PROVIDER, event, {"attendees"}, base=base)["attendees"]
    by_email = {a["email"].lower(): a for a in merged}
    assert list(by_email) == ["bob@example.org", "me@example.com", "carol@example.org"]  # dave removed by app
    assert by_email["bob@example.org"]["displayName"] == "Robert"
    assert by_email["bob@example.org"]["responseStatus"] == "declined"  # Bob's own answer is kept
    assert by_email["bob@example.org"]["comment"] == "busy"
    assert by_email["me@example.com"]["responseStatus"] == "accepted"  # the owner's RSVP is the app's


def test_patch_without_base_never_drops_provider_attendees() -> None:
    merged = google_patch(PROVIDER, TIMED, {"attendees"})["attendees"]
    assert {a["email"].lower() for a in merged} >= {"carol@example.org", "dave@example.org", "me@example.com"}


def test_patch_merges_reminder_overrides_and_attachments() -> None:
    base = dataclasses.replace(TIMED, reminders=(Reminder("popup", 10),), attachments=())
    event = dataclasses.replace(TIMED, reminders=(Reminder("email", 60),))
    patch = google_patch(PROVIDER, event, {"reminders", "attachments"}, base=base)
    assert patch["reminders"] == {
        "useDefault": False,
        "overrides": [{"method": "email", "minutes": 60}, {"method": "sms", "minutes": 5}],
    }  # popup/10 removed by the app
    assert [a["fileUrl"] for a in patch["attachments"]] == [
        "https://drive.google.com/open?id=1",
        "https://drive.google.com/open?id=9",
    ]


def test_patch_switching_to_default_reminders_clears_overrides() -> None:
    patch = google_patch(PROVIDER, ALL_DAY, {"reminders_use_default"})
    assert patch == {"reminders": {"useDefault": True, "overrides": []}}


def test_patch_switching_to_all_day_nulls_the_timed_keys() -> None:
    patch = google_patch({"start": {"dateTime": "x"}}, ALL_DAY, {"all_day"})
    assert patch["start"] == {"date": "2024-06-03", "dateTime": None, "timeZone": None}


def test_patch_rejects_unknown_field_names() -> None:
    with pytest.raises(ValueError, match="colour"):
        google_patch(None, TIMED, {"colour"})


def test_patch_ignores_read_only_fields() -> None:
    assert google_patch(None, TIMED, {"organizer", "html_link", "etag"}) == {}


GOOD = {"id": "good1", "start": {"date": "2024-06-03"}, "end": {"date": "2024-06-04"}}


@pytest.mark.parametrize(
    ("item", "ext_id", "reason"),
    [
        ({"summary": "no id", "start": {"date": "2024-06-03"}}, "", "missing id"),
        ("not a dict", "", "not a JSON object"),
        (
            {"id": "bad1", "start": {"dateTime": "2024-13-40T25:00:00Z"}, "end": {"dateTime": "x"}},
            "bad1",
            "bad start",
        ),
        (
            {
                "id": "bad2",
                "start": {"dateTime": "2024-05-10T10:00:00Z"},
                "end": {"dateTime": "2024-05-10T09:00:00Z"},
            },
            "bad2",
            "before start",
        ),
        (
            {"id": "bad3", "start": {"date": "2024-06-05"}, "end": {"date": "2024-06-03"}},
            "bad3",
            "before start",
        ),
        (
            {
                "id": "bad4",
                "start": {"dateTime": "2024-05-10T10:00:00"},
                "end": {"dateTime": "2024-05-10T11:00:00"},
            },
            "bad4",
            "no offset and no time zone",
        ),
        ({"id": "bad5", "summary": "x"}, "bad5", "missing start"),
        (
            {"id": "bad6", "start": {"date": "2024-06-03"}, "end": {"dateTime": "2024-06-04T00:00:00Z"}},
            "bad6",
            "date",
        ),
    ],
)
def test_malformed_item_is_skipped_while_good_items_still_normalize(
    item: Any, ext_id: str, reason: str
) -> None:
    events, skipped = page_from_google([GOOD, item, GOOD | {"id": "good2"}])
    assert [e.ext_id for e in events] == ["good1", "good2"]
    assert len(skipped) == 1 and isinstance(skipped[0], Skipped)
    assert skipped[0].ext_id == ext_id and reason in skipped[0].reason


def test_event_from_google_raises_normalize_error_with_the_id() -> None:
    with pytest.raises(NormalizeError) as info:
        event_from_google({"id": "x1", "start": {"dateTime": "nope"}, "end": {"dateTime": "nope"}})
    assert info.value.ext_id == "x1"


def test_cancelled_item_with_unreadable_details_becomes_a_tombstone() -> None:
    item = {"id": "abc_20240601", "status": "cancelled", "start": {"dateTime": "garbage"}}
    event = event_from_google(item)
    assert event.cancelled and event.recurring_event_id == "abc" and event.original_start == date(2024, 6, 1)


def test_offsetless_datetime_falls_back_to_the_calendar_zone() -> None:
    item = {
        "id": "z1",
        "start": {"dateTime": "2024-01-10T09:00:00"},
        "end": {"dateTime": "2024-01-10T10:00:00"},
    }
    event = event_from_google(item, calendar_tz="America/Chicago")
    assert event.start == datetime(2024, 1, 10, 15, tzinfo=UTC) and event.start_tz == "America/Chicago"

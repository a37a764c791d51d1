"""Graph PATCH bodies: only the changed properties, and never what Graph fixes at creation."""

from __future__ import annotations

from datetime import UTC, datetime

from autosync.model import Attendee, Conference, Event, Reminder
from autosync.normalize.outlook_write import GRAPH_KEYS, graph_body, graph_patch

TEAMS = Event(ext_id="AAMk1=", summary="Review", start=datetime(2030, 5, 10, 7, tzinfo=UTC),
              end=datetime(2030, 5, 10, 8, tzinfo=UTC), start_tz="Europe/Berlin", end_tz="Europe/Berlin",
              attendees=(Attendee("bob@contoso.com", "Bob"),), reminders=(Reminder("popup", 15),),
              conference=Conference("teamsForBusiness", "https://teams.microsoft.com/l/meetup-join/x"))


def test_the_online_meeting_is_asked_for_on_create_only() -> None:
    created = graph_body(TEAMS)
    assert (created["isOnlineMeeting"], created["onlineMeetingProvider"]) == (True, "teamsForBusiness")
    for body in (graph_body(TEAMS, create=False), graph_patch(TEAMS, set(GRAPH_KEYS) | {"conference"}, {}, None)):
        assert "onlineMeetingProvider" not in body and "isOnlineMeeting" not in body


def test_a_reminder_change_touches_no_meeting_property() -> None:
    # Exchange mails attendees about updates of their meeting and Graph cannot be told not to: the
    # PATCH of a reminder change carries reminder properties only, so it is no meeting update.
    body = graph_patch(TEAMS, {"reminders"}, {}, TEAMS)
    assert set(body) == {"isReminderOn", "reminderMinutesBeforeStart"}


def test_provider_only_attendees_survive_an_attendee_change() -> None:
    old_raw = {"attendees": [{"emailAddress": {"address": "room@contoso.com"}, "type": "resource"}]}
    body = graph_patch(TEAMS, {"attendees"}, old_raw, TEAMS)
    assert [a["emailAddress"]["address"] for a in body["attendees"]] == ["bob@contoso.com", "room@contoso.com"]

"""Google event types in the emulator: every type is listed unless `eventTypes` filters, and the
writes Google refuses for a type are refused (discovery document `eventType`/`eventTypes`)."""

from __future__ import annotations

from typing import Any

from autosync.emulator.client import EmulatorClient
from tests.emulator.conftest import GoogleUser, timed

DAY = "2024-05-10"


def _typed(kind: str, summary: str, **extra: Any) -> dict[str, Any]:
    return timed(summary, f"{DAY}T09:00:00+02:00", f"{DAY}T10:00:00+02:00", eventType=kind, **extra)


def _seed_every_type(admin: EmulatorClient, guser: GoogleUser) -> None:
    """One event of each type, as Google, Gmail and the Workspace UI would put them there."""
    guser.insert(_typed("default", "Dentist"))
    guser.insert(_typed("outOfOffice", "Away", outOfOfficeProperties={"autoDeclineMode": "declineNone"}))
    guser.insert(_typed("focusTime", "Deep work", focusTimeProperties={}))
    guser.insert(_typed("workingLocation", "Home", workingLocationProperties={"type": "homeOffice"}))
    admin.google_insert(guser.calendar_id, _typed("fromGmail", "Flight LH 123"), raw=True)
    admin.google_insert(guser.calendar_id, {"summary": "Ana's birthday", "eventType": "birthday",
                                            "start": {"date": DAY}, "end": {"date": "2024-05-11"},
                                            "recurrence": ["RRULE:FREQ=YEARLY"]}, raw=True)


def _types(body: dict[str, Any]) -> list[str]:
    return sorted(item.get("eventType", "") for item in body["items"])


def test_every_event_type_is_listed_unless_event_types_filters(admin: EmulatorClient, guser: GoogleUser) -> None:
    _seed_every_type(admin, guser)
    assert _types(guser.list().json()) == ["birthday", "default", "focusTime", "fromGmail", "outOfOffice",
                                          "workingLocation"]
    filtered = guser.list(eventTypes=["default", "fromGmail"]).json()
    assert _types(filtered) == ["default", "fromGmail"]


def test_event_types_goes_with_a_sync_token_and_filters_changes_but_not_deletions(
        admin: EmulatorClient, guser: GoogleUser) -> None:
    _seed_every_type(admin, guser)
    token = guser.sync_token(eventTypes=["default", "fromGmail"], showDeleted="true")
    guser.insert(_typed("focusTime", "More focus", focusTimeProperties={}))
    gone = guser.insert(_typed("outOfOffice", "Trip", outOfOfficeProperties={}))
    assert guser.session.delete(guser.url(f"/{gone['id']}")).status_code == 204
    kept = guser.insert(_typed("default", "Lunch"))
    body = guser.list(syncToken=token, eventTypes=["default", "fromGmail"], showDeleted="true").json()
    by_id = {item["id"]: item for item in body["items"]}
    assert by_id[kept["id"]]["summary"] == "Lunch"
    assert by_id[gone["id"]] == {"kind": "calendar#event", "etag": by_id[gone["id"]]["etag"], "id": gone["id"],
                                 "status": "cancelled"}  # a deletion comes whatever its type was
    assert [i for i in body["items"] if i.get("eventType") == "focusTime"] == []


def test_an_unknown_event_type_value_is_a_400(guser: GoogleUser) -> None:
    answer = guser.list(eventTypes=["default", "holiday"])
    assert answer.status_code == 400 and answer.json()["error"]["errors"][0]["location"] == "eventTypes"


def test_an_event_from_gmail_cannot_be_created(guser: GoogleUser) -> None:
    answer = guser.session.post(guser.url(), json=_typed("fromGmail", "Fake flight"))
    assert answer.status_code == 400
    assert answer.json()["error"]["errors"][0]["reason"] == "eventTypeRestriction"


def test_status_events_need_their_properties_on_insert(guser: GoogleUser) -> None:
    answer = guser.session.post(guser.url(), json=_typed("outOfOffice", "Away"))
    assert answer.status_code == 400 and "outOfOfficeProperties" in answer.json()["error"]["message"]


def test_an_event_from_gmail_takes_reminder_changes_only(admin: EmulatorClient, guser: GoogleUser) -> None:
    flight = admin.google_insert(guser.calendar_id, _typed("fromGmail", "Flight LH 123"), raw=True)
    url = guser.url(f"/{flight['id']}")
    moved = guser.session.patch(url, json={"summary": "Flight (renamed)"})
    assert moved.status_code == 400 and moved.json()["error"]["errors"][0]["reason"] == "eventTypeRestriction"
    same = guser.session.patch(url, json={"summary": "Flight LH 123"})  # nothing changes: accepted
    assert same.status_code == 200
    reminded = guser.session.patch(url, json={"reminders": {"useDefault": False,
                                                            "overrides": [{"method": "popup", "minutes": 90}]}})
    assert reminded.status_code == 200 and reminded.json()["reminders"]["overrides"][0]["minutes"] == 90
    assert guser.session.delete(url).status_code == 204  # a Gmail event can be removed


def test_the_event_type_never_changes_after_creation(guser: GoogleUser) -> None:
    event = guser.insert(_typed("default", "Plain"))
    patched = guser.session.patch(guser.url(f"/{event['id']}"), json={"eventType": "focusTime"})
    assert patched.status_code == 200 and patched.json()["eventType"] == "default"

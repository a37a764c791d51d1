"""Graph emulator fidelity for the quirks of issue 19, over real HTTP: all-day originals, rounds without
series masters, silent occurrence deletes, cancelledOccurrences only with $select, shared calendars."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from graph_conftest_helpers import WINDOW, Mailbox, running_emulator, timed

from autosync.emulator.server import Emulator

DELTA = "/me/calendarView/delta"


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    yield from running_emulator()


@pytest.fixture
def box(emu: Emulator, request: pytest.FixtureRequest) -> Iterator[Mailbox]:
    mailbox = Mailbox(emu, f"{request.node.name[:40]}@contoso.com")
    yield mailbox
    mailbox.admin("POST", "/config", json={"delta_masters": "all", "silent_occurrence_deletes": False})


def all_day_weekly(subject: str, first: str, zone: str, count: int = 3, **extra: Any) -> dict[str, Any]:
    """An all-day weekly series (2024-05-13 is a Monday) made in ``zone``."""
    day_after = f"{first[:8]}{int(first[8:]) + 1:02d}"
    return {"subject": subject, "isAllDay": True,
            "start": {"dateTime": f"{first}T00:00:00", "timeZone": zone},
            "end": {"dateTime": f"{day_after}T00:00:00", "timeZone": zone},
            "recurrence": {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
                           "range": {"type": "numbered", "startDate": first, "numberOfOccurrences": count}},
            **extra}


def instances(box: Mailbox, master_id: str, path: str = "/me/events") -> list[dict[str, Any]]:
    resp = box.call("GET", f"{path}/{master_id}/instances", params={**WINDOW, "$top": "100"})
    assert resp.status_code == 200, resp.text
    return sorted(resp.json()["value"], key=lambda i: i["start"]["dateTime"])


@pytest.mark.parametrize(("zone", "original"), [
    ("South Africa Standard Time", "2024-05-19T22:00:00Z"),   # UTC+2: the evening before, in UTC
    ("E. Australia Standard Time", "2024-05-19T14:00:00Z"),   # UTC+10
    ("US Mountain Standard Time", "2024-05-20T07:00:00Z"),    # UTC-7: the same day
])
def test_all_day_original_start_is_the_creators_midnight_in_utc_and_the_zone_the_requested_one(
        box: Mailbox, zone: str, original: str) -> None:
    master = box.create(all_day_weekly("Gym", "2024-05-13", zone))
    second = instances(box, master["id"])[1]
    assert second["start"] == {"dateTime": "2024-05-20T00:00:00.0000000", "timeZone": "UTC"}
    assert second["originalStart"] == original
    assert second["originalStartTimeZone"] == second["originalEndTimeZone"] == "UTC"
    asked = box.call("GET", f"/me/events/{second['id']}", prefer=['outlook.timezone="Pacific Standard Time"']).json()
    assert asked["originalStartTimeZone"] == "Pacific Standard Time" and asked["originalStart"] == original
    assert master["recurrence"]["range"]["recurrenceTimeZone"] == zone
    timed_item = box.create(timed("Call", "2024-05-21T09:00:00", "2024-05-21T10:00:00", zone))
    assert timed_item["originalStartTimeZone"] == zone  # timed items keep their own zone


def test_an_invitees_copy_of_an_all_day_series_has_no_recurrence_time_zone(box: Mailbox) -> None:
    organizer = {"emailAddress": {"name": "Bob", "address": "bob@contoso.com"}}
    master = box.create(all_day_weekly("Offsite", "2024-05-13", "South Africa Standard Time", organizer=organizer))
    assert master["isOrganizer"] is False and master["recurrence"]["range"]["recurrenceTimeZone"] == ""
    assert instances(box, master["id"])[1]["originalStart"] == "2024-05-19T22:00:00Z"


def _daily(subject: str, first: str) -> dict[str, Any]:
    return timed(subject, f"{first}T09:00:00", f"{first}T09:30:00", recurrence={
        "pattern": {"type": "daily", "interval": 1}, "range": {"type": "numbered", "startDate": first,
                                                               "numberOfOccurrences": 60}})


@pytest.mark.parametrize(("mode", "listed"), [("all", {"Early", "Inside"}), ("started_in_window", {"Inside"}),
                                              ("none", set())])
def test_delta_masters_decides_which_series_masters_a_round_lists(box: Mailbox, mode: str, listed: set[str]) -> None:
    assert box.admin("POST", "/config", json={"delta_masters": mode}).status_code == 200
    early = box.create(_daily("Early", "2024-04-20"))  # began before the window (May 1)
    inside = box.create(_daily("Inside", "2024-05-10"))
    items, link, _ = box.delta_round(DELTA, WINDOW)
    masters = {i["subject"] for i in items if i.get("type") == "seriesMaster"}
    assert masters == listed
    occurrences = {i["seriesMasterId"] for i in items if i.get("type") == "occurrence"}
    assert occurrences == {early["id"], inside["id"]}
    # A later change to an unlisted master shows as its instances, never as an @removed of the master.
    box.call("PATCH", f"/me/events/{early['id']}", json={"subject": "Early (renamed)"})
    changed, _, _ = box.delta_round(link)
    assert {i["id"] for i in changed if "@removed" in i} == set()
    assert {i.get("seriesMasterId") for i in changed if i.get("type") == "occurrence"} == {early["id"]}
    assert (early["id"] in {i["id"] for i in changed}) == (mode == "all")


def test_delta_masters_refuses_an_unknown_mode(box: Mailbox) -> None:
    assert box.admin("POST", "/config", json={"delta_masters": "some"}).status_code == 400


@pytest.mark.parametrize("silent", [False, True])
def test_a_deleted_occurrence_is_never_removed_and_shows_only_when_not_silent(box: Mailbox, silent: bool) -> None:
    box.admin("POST", "/config", json={"silent_occurrence_deletes": silent})
    master = box.create(_daily("Standup", "2024-05-10"))
    _, link, _ = box.delta_round(DELTA, WINDOW)
    gone = instances(box, master["id"])[3]
    before = box.call("GET", f"/me/events/{master['id']}").json()["changeKey"]
    assert box.call("DELETE", f"/me/events/{gone['id']}").status_code == 204
    changed, _, _ = box.delta_round(link)
    assert not [i for i in changed if "@removed" in i]
    assert (changed == []) == silent
    if not silent:
        assert master["id"] in {i["id"] for i in changed} and gone["id"] not in {i["id"] for i in changed}
    after = box.call("GET", f"/me/events/{master['id']}").json()
    assert after["changeKey"] != before  # the master item itself changed either way
    assert gone["id"] not in {i["id"] for i in instances(box, master["id"])}


def test_cancelled_occurrences_only_when_selected_on_a_master(box: Mailbox) -> None:
    master = box.create(_daily("Standup", "2024-05-10"))
    occ = instances(box, master["id"])
    box.call("DELETE", f"/me/events/{occ[5]['id']}")
    box.call("DELETE", f"/me/events/{occ[2]['id']}")
    plain = box.call("GET", f"/me/events/{master['id']}").json()
    assert "cancelledOccurrences" not in plain
    picked = box.call("GET", f"/me/events/{master['id']}",
                      params={"$select": "subject,cancelledOccurrences"}).json()
    assert picked["cancelledOccurrences"] == [f"OID.{master['id']}.2024-05-12", f"OID.{master['id']}.2024-05-15"]
    assert set(picked) - {"@odata.context", "@odata.etag"} == {"id", "subject", "cancelledOccurrences"}
    single = box.create(timed("Call", "2024-05-21T09:00:00", "2024-05-21T10:00:00"))
    assert box.call("GET", f"/me/events/{single['id']}",
                    params={"$select": "cancelledOccurrences"}).json()["cancelledOccurrences"] == []
    listed = box.call("GET", DELTA, params=WINDOW).json()["value"]
    assert all("cancelledOccurrences" not in i for i in listed)


def test_a_shared_calendars_events_are_found_only_through_the_calendar(emu: Emulator, box: Mailbox) -> None:
    owner = Mailbox(emu, "owner-shared@contoso.com")
    assert box.admin("POST", f"/calendars/{owner.calendar_id}/share",
                     json={"account_id": box.account_id}).status_code == 200
    assert owner.calendar_id in {c["id"] for c in box.call("GET", "/me/calendars").json()["value"]}
    made = box.create(timed("Review", "2024-05-20T09:00:00", "2024-05-20T10:00:00"), owner.calendar_id)
    series = box.create(_daily("Standup", "2024-05-10"), owner.calendar_id)
    base = f"/me/calendars/{owner.calendar_id}/events"
    mine = box.call("GET", f"/me/events/{made['id']}")
    assert mine.status_code == 404 and mine.json()["error"]["code"] == "ErrorItemNotFound"
    assert box.call("PATCH", f"/me/events/{made['id']}", json={"subject": "x"}).status_code == 404
    assert box.call("DELETE", f"/me/events/{made['id']}").status_code == 404
    assert box.call("GET", f"/me/events/{series['id']}/instances", params=WINDOW).status_code == 404
    assert box.call("GET", f"{base}/{made['id']}").json()["subject"] == "Review"
    assert box.call("PATCH", f"{base}/{made['id']}", json={"subject": "Review 2"}).json()["subject"] == "Review 2"
    assert len(instances(box, series["id"], base)) > 0
    assert box.call("DELETE", f"{base}/{made['id']}").status_code == 204
    assert box.call("GET", f"{base}/{made['id']}").status_code == 404
    assert owner.call("GET", f"/me/events/{series['id']}").status_code == 200  # the owner's own mailbox
    # Through another calendar, or a calendar not shared with the caller, the item is not found either.
    assert box.call("GET", f"/me/calendars/{box.calendar_id}/events/{series['id']}").status_code == 404
    stranger = Mailbox(emu, "stranger-shared@contoso.com")
    assert stranger.call("GET", f"{base}/{series['id']}").status_code == 404
    items, _, _ = box.delta_round(f"/me/calendars/{owner.calendar_id}/calendarView/delta", WINDOW)
    assert series["id"] in {i["id"] for i in items}

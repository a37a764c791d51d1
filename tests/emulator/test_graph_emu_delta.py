"""calendarView/delta of the Graph emulator over real HTTP: the Graph rules of PROVIDER_RULES.md."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import unquote

import pytest
from graph_conftest_helpers import WINDOW, Mailbox, running_emulator, timed, weekly

from autosync.emulator.server import Emulator

BARE_KEYS = {"@odata.type", "@odata.etag", "id", "seriesMasterId", "type", "start", "end"}
GRAPH_DT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}$")
DELTA = "/me/calendarView/delta"


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    yield from running_emulator()


@pytest.fixture
def box(emu: Emulator, request: pytest.FixtureRequest) -> Mailbox:
    return Mailbox(emu, f"{request.node.name[:40]}@contoso.com")


def by_id(items: list[dict]) -> dict[str, dict]:
    return {i["id"]: i for i in items}


def instances(box: Mailbox, master_id: str) -> list[dict]:
    resp = box.call("GET", f"/me/events/{master_id}/instances", params={**WINDOW, "$top": "100"})
    assert resp.status_code == 200, resp.text
    return list(resp.json()["value"])


def test_initial_round_has_full_master_bare_occurrences_and_full_exceptions(box: Mailbox) -> None:
    master = box.create(
        weekly(
            "Standup",
            "2024-05-13T09:00:00",
            "2024-05-13T09:15:00",
            ["monday"],
            "2024-06-03",
            "W. Europe Standard Time",
        )
    )
    single = box.create(timed("Review", "2024-05-20T10:00:00", "2024-05-20T11:00:00"))
    occ = instances(box, master["id"])
    box.call("PATCH", f"/me/events/{occ[1]['id']}", json={"subject": "Standup (moved)"})
    items, _, _ = box.delta_round(DELTA, WINDOW)
    got = by_id(items)
    assert got[master["id"]]["type"] == "seriesMaster"
    assert got[master["id"]]["recurrence"]["pattern"] == {
        "type": "weekly",
        "interval": 1,
        "month": 0,
        "dayOfMonth": 0,
        "daysOfWeek": ["monday"],
        "firstDayOfWeek": "sunday",
        "index": "first",
    }
    assert got[master["id"]]["recurrence"]["range"]["numberOfOccurrences"] == 0
    assert got[master["id"]]["start"]["dateTime"] == "2024-05-13T07:00:00.0000000"  # first occurrence, in UTC
    plain = [i for i in items if i.get("type") == "occurrence"]
    assert len(plain) == 3 and all(set(i) == BARE_KEYS for i in plain)
    exception = got[occ[1]["id"]]
    assert exception["type"] == "exception" and exception["subject"] == "Standup (moved)"
    assert (
        exception["seriesMasterId"] == master["id"] and exception["originalStart"] == "2024-05-20T07:00:00Z"
    )
    assert got[single["id"]]["subject"] == "Review"


def test_plain_occurrence_ids_are_stable_across_rounds(box: Mailbox) -> None:
    box.create(weekly("Sync", "2024-05-14T09:00:00", "2024-05-14T09:30:00", ["tuesday"], "2024-06-30"))
    first, _, _ = box.delta_round(DELTA, WINDOW)
    second, _, _ = box.delta_round(DELTA, WINDOW)
    assert [i["id"] for i in first] == [i["id"] for i in second]


def test_links_are_absolute_on_the_emulator_and_tokens_need_url_care(box: Mailbox) -> None:
    for n in range(3):
        box.create(timed(f"E{n}", f"2024-05-1{n}T10:00:00", f"2024-05-1{n}T11:00:00"))
    body = box.call("GET", DELTA, params=WINDOW, prefer=["odata.maxpagesize=2"]).json()
    link = body["@odata.nextLink"]
    assert link.startswith(f"{box.emu.graph_api_url}/me/calendarView/delta?$skiptoken=")
    token = link.split("$skiptoken=", 1)[1]
    for needed in ("%2B", "%2F", "%3D", "%25", "%26", "%C3%A9", "-", "_", "."):
        assert needed in token


def test_verbatim_replay_works_and_rebuilt_links_are_rejected(box: Mailbox) -> None:
    for n in range(3):
        box.create(timed(f"E{n}", f"2024-05-1{n}T10:00:00", f"2024-05-1{n}T11:00:00"))
    link = box.call("GET", DELTA, params=WINDOW, prefer=["odata.maxpagesize=2"]).json()["@odata.nextLink"]
    base, token = link.split("?$skiptoken=", 1)
    reencoded = box.call("GET", base, params={"$skiptoken": unquote(token)})  # client parsed and re-sent it
    assert reencoded.status_code == 400
    assert reencoded.json()["error"]["message"] == "Invalid delta token."
    decoded = box.call("GET", unquote(link))
    assert decoded.status_code == 400
    verbatim = box.call("GET", link, prefer=["odata.maxpagesize=2"])
    assert verbatim.status_code == 200 and "@odata.deltaLink" in verbatim.json()


def test_window_is_frozen_in_the_token(box: Mailbox) -> None:
    box.create(timed("Inside", "2024-05-10T10:00:00", "2024-05-10T11:00:00"))
    _, delta_link, _ = box.delta_round(DELTA, WINDOW)
    again = box.call(
        "GET",
        delta_link,
        params={"startDateTime": "2024-01-01T00:00:00Z", "endDateTime": "2024-12-31T00:00:00Z"},
    )
    assert again.status_code == 400
    later = box.create(timed("Later", "2024-09-10T10:00:00", "2024-09-10T11:00:00"))
    inside = box.create(timed("New inside", "2024-06-10T10:00:00", "2024-06-10T11:00:00"))
    items, _, _ = box.delta_round(delta_link)
    got = by_id(items)
    assert got[inside["id"]]["subject"] == "New inside"
    assert got[later["id"]] == {
        "@odata.type": "#microsoft.graph.event",
        "id": later["id"],
        "@removed": {"reason": "deleted"},
    }  # outside the frozen window (provider rule 22)


def test_initial_request_without_window_is_rejected(box: Mailbox) -> None:
    resp = box.call("GET", DELTA)
    assert resp.status_code == 400
    assert box.call("GET", DELTA, params={**WINDOW, "$top": "5"}).status_code == 400


def test_maxpagesize_is_honoured_per_request(box: Mailbox) -> None:
    for n in range(14):
        box.create(timed(f"E{n}", f"2024-05-{n + 10}T10:00:00", f"2024-05-{n + 10}T11:00:00"))
    page1 = box.call("GET", DELTA, params=WINDOW, prefer=["odata.maxpagesize=1"])
    assert len(page1.json()["value"]) == 1
    assert page1.headers["Preference-Applied"] == "odata.maxpagesize=1"
    page2 = box.call("GET", page1.json()["@odata.nextLink"], prefer=["odata.maxpagesize=3"]).json()
    assert len(page2["value"]) == 3
    page3 = box.call("GET", page2["@odata.nextLink"]).json()  # no Prefer: the default page size (10)
    assert len(page3["value"]) == 10 and "@odata.deltaLink" in page3


def test_next_round_reports_updates_and_deletions(box: Mailbox) -> None:
    keep = box.create(timed("Keep", "2024-05-10T10:00:00", "2024-05-10T11:00:00"))
    edit = box.create(timed("Edit", "2024-05-11T10:00:00", "2024-05-11T11:00:00"))
    gone = box.create(timed("Gone", "2024-05-12T10:00:00", "2024-05-12T11:00:00"))
    _, delta_link, _ = box.delta_round(DELTA, WINDOW)
    box.call("PATCH", f"/me/events/{edit['id']}", json={"subject": "Edited"})
    box.call("DELETE", f"/me/events/{gone['id']}")
    items, next_link, _ = box.delta_round(delta_link)
    got = by_id(items)
    assert keep["id"] not in got
    assert got[edit["id"]]["subject"] == "Edited"
    assert got[gone["id"]]["@removed"] == {"reason": "deleted"}
    assert box.delta_round(next_link)[0] == []


def test_event_moved_out_of_the_window_is_reported_removed(box: Mailbox) -> None:
    moved = box.create(timed("Moves", "2024-05-10T10:00:00", "2024-05-10T11:00:00"))
    _, delta_link, _ = box.delta_round(DELTA, WINDOW)
    box.call(
        "PATCH",
        f"/me/events/{moved['id']}",
        json={
            "start": {"dateTime": "2024-08-10T10:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2024-08-10T11:00:00", "timeZone": "UTC"},
        },
    )
    items, _, _ = box.delta_round(delta_link)
    assert items == [
        {"@odata.type": "#microsoft.graph.event", "id": moved["id"], "@removed": {"reason": "deleted"}}
    ]


def test_cancelled_occurrence_is_silent_in_delta_but_gone_from_instances(box: Mailbox) -> None:
    master = box.create(
        weekly("Standup", "2024-05-13T09:00:00", "2024-05-13T09:15:00", ["monday"], "2024-06-03")
    )
    victim = instances(box, master["id"])[1]["id"]
    _, delta_link, _ = box.delta_round(DELTA, WINDOW)
    assert box.call("DELETE", f"/me/events/{victim}").status_code == 204
    items, _, _ = box.delta_round(delta_link)
    got = by_id(items)
    assert got[master["id"]]["type"] == "seriesMaster"  # the master is re-emitted as changed
    assert victim not in got  # ...but nothing says the occurrence went away (provider rule 21)
    assert victim not in [i["id"] for i in instances(box, master["id"])]
    assert box.call("GET", f"/me/events/{victim}").json()["error"]["code"] == "ErrorItemNotFound"


def test_cancelled_occurrence_can_be_signalled_when_configured(box: Mailbox) -> None:
    master = box.create(
        weekly("Standup", "2024-05-13T09:00:00", "2024-05-13T09:15:00", ["monday"], "2024-06-03")
    )
    victim = instances(box, master["id"])[0]["id"]
    _, delta_link, _ = box.delta_round(DELTA, WINDOW)
    box.admin("POST", "/config", json={"signal_cancelled_occurrences": True})
    try:
        box.call("DELETE", f"/me/events/{victim}")
        items, _, _ = box.delta_round(delta_link)
    finally:
        box.admin("POST", "/config", json={"signal_cancelled_occurrences": False})
    assert by_id(items)[victim]["@removed"] == {"reason": "deleted"}


def test_deleted_series_removes_master_and_occurrences(box: Mailbox) -> None:
    master = box.create(
        weekly("Standup", "2024-05-13T09:00:00", "2024-05-13T09:15:00", ["monday"], "2024-05-27")
    )
    occ_ids = [i["id"] for i in instances(box, master["id"])]
    _, delta_link, _ = box.delta_round(DELTA, WINDOW)
    box.call("DELETE", f"/me/events/{master['id']}")
    items, _, _ = box.delta_round(delta_link)
    assert {i["id"] for i in items if "@removed" in i} == {master["id"], *occ_ids}
    assert box.call("GET", f"/me/events/{occ_ids[0]}").status_code == 404


def test_invalidated_cursors_answer_410_sync_state_not_found(box: Mailbox) -> None:
    for n in range(3):
        box.create(timed(f"E{n}", f"2024-05-1{n}T10:00:00", f"2024-05-1{n}T11:00:00"))
    next_link = box.call("GET", DELTA, params=WINDOW, prefer=["odata.maxpagesize=2"]).json()[
        "@odata.nextLink"
    ]
    _, delta_link, _ = box.delta_round(DELTA, WINDOW)
    assert (
        box.http.post(f"{box.emu.admin_url}/calendars/{box.calendar_id}/invalidate-cursors").status_code
        == 200
    )
    for link in (next_link, delta_link):
        resp = box.call("GET", link)
        assert resp.status_code == 410
        error = resp.json()["error"]
        assert error["code"] == "SyncStateNotFound"
        assert error["message"].startswith("The sync state generation is not found; generation=")
        assert {"request-id", "date"} <= set(error["innerError"])
    assert box.delta_round(DELTA, WINDOW)[2] == 1  # a new round works


def test_prefer_timezone_shifts_timed_events_but_all_day_stays_midnight(box: Mailbox) -> None:
    box.create(timed("Timed", "2024-05-10T09:00:00", "2024-05-10T10:00:00", "Europe/Berlin"))
    box.create(
        timed(
            "Day off", "2024-05-11T00:00:00", "2024-05-12T00:00:00", "W. Europe Standard Time", isAllDay=True
        )
    )
    prefer = ['outlook.timezone="Pacific Standard Time"']
    resp = box.call("GET", DELTA, params=WINDOW, prefer=prefer)
    assert resp.headers["Preference-Applied"] == 'outlook.timezone="Pacific Standard Time"'
    got = {i["subject"]: i for i in resp.json()["value"]}
    assert got["Timed"]["start"] == {
        "dateTime": "2024-05-10T00:00:00.0000000",
        "timeZone": "Pacific Standard Time",
    }
    assert got["Timed"]["originalStartTimeZone"] == "W. Europe Standard Time"
    assert got["Day off"]["start"]["dateTime"] == "2024-05-11T00:00:00.0000000"
    assert got["Day off"]["end"]["dateTime"] == "2024-05-12T00:00:00.0000000"
    default = {i["subject"]: i for i in box.call("GET", DELTA, params=WINDOW).json()["value"]}
    assert default["Timed"]["start"] == {"dateTime": "2024-05-10T07:00:00.0000000", "timeZone": "UTC"}
    for item in default.values():
        assert GRAPH_DT.match(item["start"]["dateTime"]) and GRAPH_DT.match(item["end"]["dateTime"])


def test_round_may_start_with_an_empty_page_when_configured(box: Mailbox) -> None:
    box.create(timed("Only", "2024-05-10T10:00:00", "2024-05-10T11:00:00"))
    box.admin("POST", "/config", json={"empty_first_page": True})
    try:
        first = box.call("GET", DELTA, params=WINDOW).json()
        items, _, pages = box.delta_round(DELTA, WINDOW)
    finally:
        box.admin("POST", "/config", json={"empty_first_page": False})
    assert first["value"] == [] and "@odata.nextLink" in first
    assert pages == 2 and [i["subject"] for i in items] == ["Only"]


def test_user_principal_paths_keep_the_principal_in_links(box: Mailbox) -> None:
    box.create(timed("E", "2024-05-10T10:00:00", "2024-05-10T11:00:00"))
    email = box.http.get(f"{box.emu.admin_url}/state").json()
    upn = next(a["email"] for a in email["accounts"] if a["account_id"] == box.account_id)
    path = f"/users/{upn}/calendars/{box.calendar_id}/calendarView/delta"
    items, delta_link, _ = box.delta_round(path, WINDOW)
    assert delta_link.startswith(f"{box.emu.graph_api_url}/users/{upn}/calendars/")
    assert [i["subject"] for i in items] == ["E"]
    other = box.call("GET", f"/users/someone-else@contoso.com/calendars/{box.calendar_id}/events")
    assert other.status_code == 403

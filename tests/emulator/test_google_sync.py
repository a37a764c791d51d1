"""Google events.list in the emulator: paging, sync tokens, tombstones, windows, expansion (PROVIDER_RULES.md)."""

from __future__ import annotations

import pytest

from autosync.emulator.client import EmulatorClient
from tests.emulator.conftest import GoogleUser, timed

INCOMPATIBLE = {
    "iCalUID": "x@google.com",
    "orderBy": "updated",
    "privateExtendedProperty": "a=b",
    "q": "standup",
    "sharedExtendedProperty": "a=b",
    "timeMin": "2024-01-01T00:00:00Z",
    "timeMax": "2025-01-01T00:00:00Z",
    "updatedMin": "2024-01-01T00:00:00Z",
}


def _weekly(summary: str = "Standup", **extra: object) -> dict[str, object]:
    return timed(
        summary,
        "2024-05-13T09:00:00+02:00",
        "2024-05-13T09:15:00+02:00",
        recurrence=["RRULE:FREQ=WEEKLY;COUNT=4"],
        **extra,
    )


def _many(guser: GoogleUser, n: int) -> None:
    for i in range(n):
        guser.insert(timed(f"e{i}", f"2024-05-{10 + i:02d}T09:00:00+02:00", f"2024-05-{10 + i:02d}T10:00:00+02:00"))


def test_next_sync_token_only_on_last_page_and_envelope_fields(guser: GoogleUser) -> None:
    _many(guser, 5)
    pages, token = [], None
    while True:
        body = guser.list(maxResults=2, **({"pageToken": token} if token else {})).json()
        pages.append(body)
        token = body.get("nextPageToken")
        if token is None:
            break
    assert [len(p["items"]) for p in pages] == [2, 2, 1]
    assert all("nextSyncToken" not in p for p in pages[:-1]) and "nextSyncToken" in pages[-1]
    assert "nextPageToken" not in pages[-1]
    assert {"kind", "etag", "summary", "updated", "timeZone", "accessRole", "defaultReminders"} <= set(pages[0])
    assert pages[0]["kind"] == "calendar#events" and pages[0]["accessRole"] == "owner"


def test_tokens_are_opaque_base64_with_plus_slash_and_padding(guser: GoogleUser) -> None:
    _many(guser, 2)
    page = guser.list(maxResults=1).json()
    for token in (page["nextPageToken"], guser.sync_token()):
        assert "+" in token and "/" in token and token.endswith("=")
    raw = guser.session.get(guser.url() + "?pageToken=" + page["nextPageToken"])  # '+' not percent-encoded
    assert raw.status_code == 400


def test_empty_pages_with_next_page_token_when_enabled(guser: GoogleUser, admin: EmulatorClient) -> None:
    _many(guser, 1)
    admin.google_settings(empty_pages=True)
    first = guser.list().json()
    assert first["items"] == [] and "nextPageToken" in first and "nextSyncToken" not in first
    second = guser.list(pageToken=first["nextPageToken"]).json()
    assert len(second["items"]) == 1 and "nextSyncToken" in second


@pytest.mark.parametrize("name", sorted(INCOMPATIBLE))
def test_sync_token_combined_with_incompatible_parameter_is_400(guser: GoogleUser, name: str) -> None:
    token = guser.sync_token()
    response = guser.list(syncToken=token, **{name: INCOMPATIBLE[name]})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 400


def test_incremental_sync_returns_changes_and_minimal_tombstones(guser: GoogleUser) -> None:
    doomed = guser.insert(timed("doomed", "2024-05-10T09:00:00+02:00", "2024-05-10T10:00:00+02:00"))
    series = guser.insert(_weekly())
    token = guser.sync_token()
    assert guser.list(syncToken=token).json()["items"] == []
    guser.session.delete(guser.url("/" + doomed["id"]))
    instance_id = f"{series['id']}_20240520T070000Z"
    assert guser.session.delete(guser.url("/" + instance_id)).status_code == 204
    body = guser.list(syncToken=token).json()
    items = {i["id"]: i for i in body["items"]}
    assert set(items[doomed["id"]]) == {"kind", "etag", "id", "status"}
    assert items[doomed["id"]]["status"] == "cancelled"
    assert set(items[instance_id]) == {
        "kind",
        "etag",
        "id",
        "status",
        "recurringEventId",
        "originalStartTime",
    }
    assert items[instance_id]["recurringEventId"] == series["id"]
    assert "nextSyncToken" in body and guser.list(syncToken=body["nextSyncToken"]).json()["items"] == []


def test_full_sync_hides_deleted_unless_show_deleted_but_keeps_cancelled_instances(guser: GoogleUser) -> None:
    doomed = guser.insert(timed("doomed", "2024-05-10T09:00:00+02:00", "2024-05-10T10:00:00+02:00"))
    series = guser.insert(_weekly())
    guser.session.delete(guser.url("/" + doomed["id"]))
    guser.session.delete(guser.url(f"/{series['id']}_20240520T070000Z"))
    plain = {i["id"] for i in guser.list().json()["items"]}
    assert doomed["id"] not in plain and f"{series['id']}_20240520T070000Z" in plain
    shown = {i["id"]: i for i in guser.list(showDeleted="true").json()["items"]}
    assert set(shown[doomed["id"]]) == {"kind", "etag", "id", "status"}


def test_invalidated_sync_token_is_410_full_sync_required_and_variant_without_reason(
    guser: GoogleUser, admin: EmulatorClient
) -> None:
    token = guser.sync_token()
    admin.invalidate_cursors(guser.calendar_id)
    gone = guser.list(syncToken=token)
    assert gone.status_code == 410
    assert gone.json()["error"]["errors"][0]["reason"] == "fullSyncRequired"
    admin.google_settings(sync_410_reason=False)
    bare = guser.list(syncToken=token).json()["error"]
    assert bare["code"] == 410 and "reason" not in bare["errors"][0]
    assert guser.list(syncToken="garbage").status_code == 410
    fresh = guser.sync_token()
    assert guser.list(syncToken=fresh).status_code == 200


def test_time_bounds_need_offsets_and_filter_end_exclusive_min_start_exclusive_max(guser: GoogleUser) -> None:
    guser.insert(timed("a", "2024-05-10T09:00:00Z", "2024-05-10T10:00:00Z", tz="UTC"))
    assert guser.list(timeMin="2024-05-10T00:00:00").status_code == 400
    assert guser.list(timeMin="2024-05-11T00:00:00Z", timeMax="2024-05-10T00:00:00Z").status_code == 400
    assert guser.list(timeMin="2024-05-10T10:00:00Z").json()["items"] == []
    assert len(guser.list(timeMin="2024-05-10T09:59:00Z").json()["items"]) == 1
    assert guser.list(timeMax="2024-05-10T09:00:00Z").json()["items"] == []
    assert len(guser.list(timeMax="2024-05-10T09:00:01+00:00").json()["items"]) == 1


def test_all_day_exclusive_end_is_preserved(guser: GoogleUser) -> None:
    created = guser.insert({"summary": "Offsite", "start": {"date": "2024-06-03"}, "end": {"date": "2024-06-05"}})
    fetched = guser.session.get(guser.url("/" + created["id"])).json()
    assert fetched["start"] == {"date": "2024-06-03"} and fetched["end"] == {"date": "2024-06-05"}


def test_single_events_expands_rrule_with_exdate_across_dst_in_start_zone(guser: GoogleUser) -> None:
    rules = ["RRULE:FREQ=DAILY;COUNT=5", "EXDATE;TZID=Europe/Berlin:20240330T090000"]
    master = guser.insert(timed("Standup", "2024-03-29T09:00:00+01:00", "2024-03-29T09:15:00+01:00", recurrence=rules))
    items = guser.list(singleEvents="true", orderBy="startTime", timeZone="Europe/Berlin").json()["items"]
    assert [i["id"] for i in items] == [
        f"{master['id']}_20240329T080000Z",
        f"{master['id']}_20240331T070000Z",
        f"{master['id']}_20240401T070000Z",
        f"{master['id']}_20240402T070000Z",
    ]
    assert items[1]["start"]["dateTime"] == "2024-03-31T09:00:00+02:00"
    assert items[1]["originalStartTime"]["dateTime"] == "2024-03-31T09:00:00+02:00"
    assert all(i["recurringEventId"] == master["id"] and "recurrence" not in i for i in items)


def test_order_by_start_time_requires_single_events_and_max_results_is_capped(guser: GoogleUser) -> None:
    assert guser.list(orderBy="startTime").status_code == 400
    assert guser.list(maxResults=99999).status_code == 200
    assert guser.list(maxResults=0).status_code == 400


def test_person_edits_through_admin_appear_in_incremental_sync(guser: GoogleUser, admin: EmulatorClient) -> None:
    token = guser.sync_token()
    made = admin.google_insert(guser.calendar_id, timed("by hand", "2024-05-10T09:00:00Z", "2024-05-10T10:00:00Z"))
    admin.google_patch(guser.calendar_id, made["id"], {"summary": "renamed"})
    items = guser.list(syncToken=token).json()["items"]
    assert [(i["id"], i["summary"]) for i in items] == [(made["id"], "renamed")]
    assert any(e["id"] == made["id"] for e in admin.google_list(guser.calendar_id))


def test_calendar_of_another_account_is_404(guser: GoogleUser, admin: EmulatorClient) -> None:
    other = admin.create_account("google", "bob@example.com")
    response = guser.session.get(guser.url(calendar=other["calendar_id"]))
    assert response.status_code == 404
    assert response.json()["error"]["errors"][0]["reason"] == "notFound"

"""Shape fidelity: every Google sample in ../shared/provider-samples/google has an emulator counterpart of the
same shape (keys present with the same JSON types; lists compared by their first element)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import requests

from autosync.emulator.client import EmulatorClient
from autosync.emulator.server import Emulator
from tests.emulator.conftest import GoogleUser, google_sample, shape, timed

RAW_EVENT_SAMPLES = [
    "event-allday-exdate-tzid-mismatch-gcal-sync.json",
    "event-allday-hangoutsmeet-gdata.json",
    "event-focustime-gdata.json",
    "event-outofoffice-gdata.json",
    "event-recurring-master-rrule-rdate-exdate-gdata.json",
    "event-timed-attendees-reminders-attachments-gdata.json",
    "event-utc-no-end-gdata.json",
]
LIST_SAMPLES = [
    "events-incremental-cancelled-instance-compass.json",
    "events-incremental-modified-instance-compass.json",
    "events-incremental-series-deleted-minimal-compass.json",
    "events-incremental-this-and-following-split-compass.json",
]


def _raw_insert(server: Emulator, calendar_id: str, event: dict[str, Any]) -> dict[str, Any]:
    url = f"{server.admin_url}/google/calendars/{calendar_id}/events"
    response = requests.post(url, params={"raw": "true"}, json=event, timeout=5)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


@pytest.mark.parametrize("name", RAW_EVENT_SAMPLES)
def test_stored_sample_event_reads_back_with_the_same_shape(name: str, guser: GoogleUser, server: Emulator) -> None:
    sample = google_sample(name)
    stored = _raw_insert(server, guser.calendar_id, sample)
    fetched = guser.session.get(guser.url("/" + stored["id"])).json()
    assert shape(sample, fetched) == []


def test_sample_event_inserted_through_the_api_keeps_its_shape(guser: GoogleUser) -> None:
    sample = google_sample("event-timed-attendees-reminders-attachments-gdata.json")
    body = {k: v for k, v in copy.deepcopy(sample).items() if k not in ("id", "etag", "htmlLink")}
    created = guser.insert(body, conferenceDataVersion="1", supportsAttachments="true")
    assert shape(sample, created) == []
    meet = google_sample("event-allday-hangoutsmeet-gdata.json")
    made = guser.insert({k: v for k, v in meet.items() if k != "id"}, conferenceDataVersion="1")
    assert shape(meet, made) == [] and made["hangoutLink"].startswith("https://meet.google.com/")


def test_moved_all_day_instance_sample_matches_an_exception(guser: GoogleUser, server: Emulator) -> None:
    sample = google_sample("event-recurring-instance-moved-allday-gdata.json")
    master = guser.insert(
        {
            "summary": "Weekly",
            "start": {"date": "2006-06-25"},
            "end": {"date": "2006-06-26"},
            "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=3"],
        }
    )
    moved = guser.session.patch(
        guser.url(f"/{master['id']}_20060625"),
        json={"start": {"date": "2006-06-26"}, "end": {"date": "2006-06-27"}},
    ).json()
    assert shape(sample, moved) == []
    assert moved["originalStartTime"] == {"date": "2006-06-25"}


def _incremental_scenario(guser: GoogleUser) -> dict[str, Any]:
    """An incremental page with a changed master, an exception, a cancelled instance, a deleted event."""
    rule = ["RRULE:FREQ=DAILY;UNTIL=20250401T045959Z"]
    master = guser.insert(
        timed(
            "Breakfast",
            "2025-03-24T07:30:00-05:00",
            "2025-03-24T08:15:00-05:00",
            tz="America/Chicago",
            recurrence=rule,
        )
    )
    single = guser.insert(
        timed("Dentist", "2025-03-25T10:00:00-05:00", "2025-03-25T11:00:00-05:00", tz="America/Chicago")
    )
    token = guser.sync_token()
    guser.session.patch(guser.url("/" + master["id"]), json={"description": "Originally was"})
    guser.session.patch(
        guser.url(f"/{master['id']}_20250325T123000Z"),
        json={
            "start": {"dateTime": "2025-03-25T12:30:00-05:00", "timeZone": "America/Chicago"},
            "end": {"dateTime": "2025-03-25T13:15:00-05:00", "timeZone": "America/Chicago"},
        },
    )
    guser.session.delete(guser.url(f"/{master['id']}_20250326T123000Z"))
    guser.session.delete(guser.url("/" + single["id"]))
    body: dict[str, Any] = guser.list(syncToken=token).json()
    return body


def _like(item: dict[str, Any], candidates: list[dict[str, Any]]) -> dict[str, Any]:
    def kind(event: dict[str, Any]) -> tuple[object, ...]:
        return (event.get("status"), "recurringEventId" in event, "recurrence" in event)

    matches = [c for c in candidates if kind(c) == kind(item)]
    assert matches, f"no emulator item like {kind(item)}"
    return matches[0]


@pytest.mark.parametrize("name", LIST_SAMPLES)
def test_incremental_list_sample_matches_envelope_and_item_shapes(name: str, guser: GoogleUser) -> None:
    sample = google_sample(name)
    page = _incremental_scenario(guser)
    envelope = {k: v for k, v in sample.items() if k != "items"}
    assert shape(envelope, page) == []
    for item in sample["items"]:
        assert shape(item, _like(item, page["items"])) == []


def test_next_page_token_snippet_shape(guser: GoogleUser) -> None:
    sample = google_sample("events-list-nextpagetoken-docs-snippet.json")
    for day in (10, 11):
        guser.insert(timed("x", f"2024-05-{day}T09:00:00Z", f"2024-05-{day}T10:00:00Z", tz="UTC"))
    assert shape(sample, guser.list(maxResults=1).json()) == []


def _error(response: requests.Response, name: str, status: int) -> None:
    sample = google_sample(name)
    assert response.status_code == status
    assert shape(sample, response.json()) == []
    assert response.json()["error"]["errors"][0].get("reason") == sample["error"]["errors"][0]["reason"]


def test_401_body_matches_sample(server: Emulator, guser: GoogleUser) -> None:
    response = requests.get(guser.url(), headers={"Authorization": "Bearer nope"}, timeout=5)
    _error(response, "error-401-autherror-docs.json", 401)
    assert response.json() == google_sample("error-401-autherror-docs.json")


@pytest.mark.parametrize(
    ("variant", "name", "status"),
    [
        ("403-rateLimitExceeded", "error-403-ratelimitexceeded-docs.json", 403),
        ("403-userRateLimitExceeded", "error-403-userratelimitexceeded-docs.json", 403),
        ("429", "error-429-ratelimitexceeded-docs.json", 429),
        ("403-quotaExceeded", "error-403-quotaexceeded-usage-limits-docs.json", 403),
    ],
)
def test_rate_limit_bodies_match_samples(
    variant: str, name: str, status: int, guser: GoogleUser, admin: EmulatorClient
) -> None:
    admin.set_quota("google", requests_per_window=1, window_seconds=60, variant=variant)
    guser.list()
    response = guser.list()
    _error(response, name, status)
    assert response.json() == google_sample(name)


def test_410_bodies_match_samples(guser: GoogleUser, admin: EmulatorClient) -> None:
    token = guser.sync_token()
    admin.invalidate_cursors(guser.calendar_id)
    gone = guser.list(syncToken=token)
    _error(gone, "error-410-fullsyncrequired-docs.json", 410)
    assert gone.json() == google_sample("error-410-fullsyncrequired-real-capture-compass.json")
    created = guser.insert(timed("x", "2024-05-10T09:00:00Z", "2024-05-10T10:00:00Z", tz="UTC"))
    guser.session.delete(guser.url("/" + created["id"]))
    again = guser.session.delete(guser.url("/" + created["id"]))
    assert again.json() == google_sample("error-410-deleted-docs.json")
    admin.google_settings(updated_min_max_age_days=28)
    too_old = guser.list(updatedMin="2000-01-01T00:00:00Z")
    assert too_old.json() == google_sample("error-410-updatedmintoolongago-docs.json")


def test_500_fault_body_matches_backend_error_sample(guser: GoogleUser, admin: EmulatorClient) -> None:
    admin.add_fault("status", count=1, provider="google", status=500)
    response = guser.list()
    assert response.json() == google_sample("error-500-backenderror-docs.json")


def test_cancelled_instance_samples_match_emulator_tombstones(guser: GoogleUser) -> None:
    with_parent = google_sample("event-cancelled-instance-2013-no-timezone-compass.json")
    bare = google_sample("event-cancelled-instance-id-without-recurringeventid-compass.json")
    page = _incremental_scenario(guser)
    cancelled_instance = _like(with_parent, page["items"])
    assert shape(with_parent, cancelled_instance) == []
    assert set(cancelled_instance) == set(with_parent)
    deleted = _like(bare, page["items"])
    assert set(deleted) == set(bare)

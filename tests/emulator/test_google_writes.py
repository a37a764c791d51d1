"""Google event writes in the emulator: ids, deletes, etags, patch/update semantics, instances (Google event writes)."""

from __future__ import annotations

from autosync.emulator.client import EmulatorClient
from tests.emulator.conftest import GoogleUser, timed

MEET = {"createRequest": {"requestId": "req-1", "conferenceSolutionKey": {"type": "hangoutsMeet"}}}
ATTACHMENT = {
    "fileUrl": "https://drive.google.com/open?id=1",
    "title": "Spec.pdf",
    "mimeType": "application/pdf",
}


def _event(summary: str = "Design review", **extra: object) -> dict[str, object]:
    return timed(summary, "2024-05-10T09:00:00+02:00", "2024-05-10T10:00:00+02:00", **extra)


def _series(guser: GoogleUser) -> dict[str, object]:
    return guser.insert(
        timed(
            "Standup",
            "2024-05-13T09:00:00+02:00",
            "2024-05-13T09:15:00+02:00",
            recurrence=["RRULE:FREQ=WEEKLY;COUNT=4"],
        )
    )


def test_insert_honours_client_id_and_rejects_duplicates_and_bad_ids(guser: GoogleUser) -> None:
    created = guser.insert(_event(id="abcdefghijklmnopqrstuv0123"))
    assert created["id"] == "abcdefghijklmnopqrstuv0123"
    again = guser.session.post(guser.url(), json=_event(id="abcdefghijklmnopqrstuv0123"))
    assert again.status_code == 409 and again.json()["error"]["errors"][0]["reason"] == "duplicate"
    assert guser.session.post(guser.url(), json=_event(id="xyz!")).status_code == 400
    assert guser.session.post(guser.url(), json=_event(id="abcd")).status_code == 400


def test_insert_fills_server_fields_like_google(guser: GoogleUser) -> None:
    created = guser.insert(_event(attendees=[{"email": "alice@example.com"}, {"email": "bob@example.org"}]))
    assert created["kind"] == "calendar#event" and created["status"] == "confirmed"
    assert created["etag"].startswith('"') and created["etag"].endswith('"')
    assert created["organizer"] == {"email": "alice@example.com", "self": True}
    assert created["creator"]["self"] is True and created["htmlLink"].startswith("https://")
    assert created["iCalUID"] == f"{created['id']}@google.com" and created["sequence"] == 0
    assert created["updated"].endswith("Z") and len(created["updated"]) == len("2024-05-02T08:15:31.442Z")
    alice, bob = created["attendees"]
    assert alice["self"] is True and alice["organizer"] is True and bob["responseStatus"] == "needsAction"


def test_delete_is_204_then_410_deleted_and_404_for_unknown(guser: GoogleUser) -> None:
    created = guser.insert(_event())
    assert guser.session.delete(guser.url("/" + created["id"])).status_code == 204
    again = guser.session.delete(guser.url("/" + created["id"]))
    assert again.status_code == 410 and again.json()["error"]["errors"][0]["reason"] == "deleted"
    missing = guser.session.delete(guser.url("/neverexisted1"))
    assert missing.status_code == 404 and missing.json()["error"]["errors"][0]["reason"] == "notFound"
    fetched = guser.session.get(guser.url("/" + created["id"])).json()
    assert fetched["status"] == "cancelled" and fetched["summary"] == "Design review"


def test_if_match_mismatch_is_412_and_etag_changes_on_every_write(guser: GoogleUser) -> None:
    created = guser.insert(_event())
    patched = guser.session.patch(
        guser.url("/" + created["id"]), json={"summary": "x"}, headers={"If-Match": created["etag"]}
    )
    assert patched.status_code == 200 and patched.json()["etag"] != created["etag"]
    stale = guser.session.patch(
        guser.url("/" + created["id"]), json={"summary": "y"}, headers={"If-Match": created["etag"]}
    )
    assert stale.status_code == 412
    assert stale.json()["error"]["errors"][0] == {
        "domain": "global",
        "reason": "conditionNotMet",
        "message": "Precondition Failed",
        "locationType": "header",
        "location": "If-Match",
    }
    deleted = guser.session.delete(guser.url("/" + created["id"]), headers={"If-Match": created["etag"]})
    assert deleted.status_code == 412


def test_patch_replaces_arrays_whole_and_merges_objects(guser: GoogleUser) -> None:
    created = guser.insert(
        _event(
            attendees=[{"email": "a@x.org"}, {"email": "b@x.org"}],
            extendedProperties={"private": {"k1": "v1"}},
        )
    )
    patched = guser.session.patch(
        guser.url("/" + created["id"]),
        json={"attendees": [{"email": "c@x.org"}], "extendedProperties": {"private": {"k2": "v2"}}},
    ).json()
    assert [a["email"] for a in patched["attendees"]] == ["c@x.org"]
    assert patched["extendedProperties"]["private"] == {"k1": "v1", "k2": "v2"}
    assert patched["summary"] == "Design review"


def test_put_replaces_the_event_and_drops_omitted_fields(guser: GoogleUser) -> None:
    created = guser.insert(_event(location="Room 1", description="d"))
    replaced = guser.session.put(guser.url("/" + created["id"]), json=_event(summary="New")).json()
    assert replaced["summary"] == "New" and "location" not in replaced and "description" not in replaced
    assert replaced["id"] == created["id"] and replaced["created"] == created["created"]


def test_conference_data_needs_version_1_and_sets_hangout_link(guser: GoogleUser) -> None:
    ignored = guser.insert(_event(conferenceData=MEET))
    assert "conferenceData" not in ignored and "hangoutLink" not in ignored
    meet = guser.insert(_event(conferenceData=MEET), conferenceDataVersion="1")
    assert meet["conferenceData"]["createRequest"]["status"]["statusCode"] == "success"
    assert meet["hangoutLink"] == meet["conferenceData"]["entryPoints"][0]["uri"]
    kept = guser.session.put(guser.url("/" + meet["id"]), json=_event(summary="again")).json()
    assert kept["conferenceData"] == meet["conferenceData"]


def test_attachments_need_supports_attachments(guser: GoogleUser) -> None:
    ignored = guser.insert(_event(attachments=[ATTACHMENT]))
    assert "attachments" not in ignored
    kept = guser.insert(_event(attachments=[ATTACHMENT]), supportsAttachments="true")
    assert kept["attachments"][0]["title"] == "Spec.pdf"
    patched = guser.session.patch(guser.url("/" + kept["id"]), json={"attachments": []}).json()
    assert patched["attachments"][0]["title"] == "Spec.pdf"


def test_reminders_change_does_not_bump_updated_but_changes_etag(guser: GoogleUser) -> None:
    created = guser.insert(_event())
    reminders = {"useDefault": False, "overrides": [{"method": "popup", "minutes": 5}]}
    patched = guser.session.patch(guser.url("/" + created["id"]), json={"reminders": reminders}).json()
    assert patched["updated"] == created["updated"] and patched["etag"] != created["etag"]
    assert patched["reminders"] == reminders


def test_time_change_bumps_sequence(guser: GoogleUser) -> None:
    created = guser.insert(_event())
    moved = guser.session.patch(
        guser.url("/" + created["id"]),
        json={
            "start": {"dateTime": "2024-05-10T11:00:00+02:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": "2024-05-10T12:00:00+02:00", "timeZone": "Europe/Berlin"},
        },
    ).json()
    assert moved["sequence"] == created["sequence"] + 1


def test_patch_on_instance_creates_exception_with_original_start(guser: GoogleUser) -> None:
    master = _series(guser)
    instance_id = f"{master['id']}_20240520T070000Z"
    virtual = guser.session.get(guser.url("/" + instance_id)).json()
    assert virtual["recurringEventId"] == master["id"] and "recurrence" not in virtual
    moved = guser.session.patch(guser.url("/" + instance_id), json={"summary": "Standup (moved)"}).json()
    assert moved["id"] == instance_id and moved["summary"] == "Standup (moved)"
    assert moved["originalStartTime"]["timeZone"] == "Europe/Berlin"
    instances = guser.session.get(guser.url(f"/{master['id']}/instances")).json()["items"]
    assert [i["summary"] for i in instances] == ["Standup", "Standup (moved)", "Standup", "Standup"]
    assert guser.session.get(guser.url(f"/{master['id']}_20240521T070000Z")).status_code == 404


def test_deleting_master_cancels_series_and_its_exceptions(guser: GoogleUser) -> None:
    master = _series(guser)
    instance_id = f"{master['id']}_20240520T070000Z"
    guser.session.patch(guser.url("/" + instance_id), json={"summary": "moved"})
    token = guser.sync_token()
    assert guser.session.delete(guser.url("/" + str(master["id"]))).status_code == 204
    items = {i["id"]: i for i in guser.list(syncToken=token).json()["items"]}
    assert items[master["id"]] == {
        "kind": "calendar#event",
        "etag": items[master["id"]]["etag"],
        "id": master["id"],
        "status": "cancelled",
    }
    assert items[instance_id]["status"] == "cancelled" and "recurringEventId" not in items[instance_id]
    assert guser.session.delete(guser.url("/" + instance_id)).status_code == 410


def test_request_log_records_write_parameters_and_headers(guser: GoogleUser, admin: EmulatorClient) -> None:
    admin.clear_requests()
    created = guser.insert(_event(), sendUpdates="none", conferenceDataVersion="1", supportsAttachments="true")
    guser.session.patch(guser.url("/" + created["id"]), json={"summary": "x"}, headers={"If-Match": created["etag"]})
    log = admin.requests(account="alice", endpoint="google.events")
    assert log["by_endpoint"] == {"google.events.insert": 1, "google.events.patch": 1}
    insert = log["requests"][0]
    assert insert["query"] == {
        "sendUpdates": "none",
        "conferenceDataVersion": "1",
        "supportsAttachments": "true",
    }
    assert insert["headers"]["authorization_present"] is True and insert["calendar"] == "alice@example.com"
    assert log["requests"][1]["headers"]["If-Match"] == created["etag"]

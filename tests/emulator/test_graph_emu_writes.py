"""Writes, reads and recurrence of the Graph emulator over real HTTP (Graph listing, event resource, writes)."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
from graph_conftest_helpers import WINDOW, Mailbox, running_emulator, timed, weekly

from autosync.emulator.core import Account
from autosync.emulator.generator_outlook import generate_outlook_events
from autosync.emulator.graph import GraphState
from autosync.emulator.graph_recurrence import normalize_recurrence, occurrences_between, series_start
from autosync.emulator.server import Emulator


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    yield from running_emulator()


@pytest.fixture
def box(emu: Emulator, request: pytest.FixtureRequest) -> Mailbox:
    return Mailbox(emu, f"{request.node.name[:40]}@contoso.com")


def test_repeated_transaction_id_returns_the_first_event(box: Mailbox) -> None:
    body = timed("Once", "2024-05-10T10:00:00", "2024-05-10T11:00:00", transactionId="7E163156-7762-4BEB")
    first, second = box.create(body), box.create(body)
    assert first["id"] == second["id"] and first["transactionId"] == "7E163156-7762-4BEB"
    listed = box.call("GET", f"/me/calendars/{box.calendar_id}/events").json()["value"]
    assert [e["id"] for e in listed] == [first["id"]]


def test_deleting_twice_answers_404_item_not_found(box: Mailbox) -> None:
    event = box.create(timed("Bye", "2024-05-10T10:00:00", "2024-05-10T11:00:00"))
    assert box.call("DELETE", f"/me/events/{event['id']}").status_code == 204
    again = box.call("DELETE", f"/me/events/{event['id']}")
    assert again.status_code == 404 and again.json()["error"]["code"] == "ErrorItemNotFound"
    assert box.call("GET", f"/me/calendars/{box.calendar_id}/events/{event['id']}").status_code == 404


def test_patching_an_occurrence_turns_it_into_an_exception(box: Mailbox) -> None:
    master = box.create(
        weekly("Standup", "2024-05-13T09:00:00", "2024-05-13T09:15:00", ["monday"], "2024-06-03")
    )
    occ = box.call("GET", f"/me/events/{master['id']}/instances", params=WINDOW).json()["value"][2]
    assert occ["type"] == "occurrence" and occ["subject"] == "Standup"
    changed = box.call("PATCH", f"/me/events/{occ['id']}", json={"subject": "Standup (demo)"}).json()
    assert changed["id"] == occ["id"] and changed["type"] == "exception"
    assert changed["seriesMasterId"] == master["id"] and changed["originalStart"] == "2024-05-27T09:00:00Z"
    kinds = {
        i["id"]: i["type"]
        for i in box.call("GET", f"/me/events/{master['id']}/instances", params=WINDOW).json()["value"]
    }
    assert kinds[occ["id"]] == "exception" and list(kinds.values()).count("occurrence") == 3


def test_stale_if_match_answers_412_and_every_change_bumps_the_change_key(box: Mailbox) -> None:
    event = box.create(timed("Edit me", "2024-05-10T10:00:00", "2024-05-10T11:00:00"))
    time.sleep(0.002)
    ok = box.call(
        "PATCH",
        f"/me/events/{event['id']}",
        json={"subject": "Edited"},
        headers={"If-Match": event["@odata.etag"]},
    )
    assert ok.status_code == 200
    edited = ok.json()
    assert edited["changeKey"] != event["changeKey"] and edited["@odata.etag"] == f'W/"{edited["changeKey"]}"'
    assert edited["lastModifiedDateTime"] > event["lastModifiedDateTime"]
    stale = box.call(
        "PATCH",
        f"/me/events/{event['id']}",
        json={"subject": "Again"},
        headers={"If-Match": event["@odata.etag"]},
    )
    assert stale.status_code == 412 and stale.json()["error"]["code"] == "ErrorIrresolvableConflict"


def test_patch_changes_only_supplied_properties_and_replaces_collections(box: Mailbox) -> None:
    attendees = [
        {"emailAddress": {"name": "Bob", "address": "bob@contoso.com"}},
        {"emailAddress": {"name": "Carol", "address": "carol@contoso.com"}},
    ]
    event = box.create(
        timed(
            "Meet",
            "2024-05-10T10:00:00",
            "2024-05-10T11:00:00",
            attendees=attendees,
            location={"displayName": "Room 1"},
            categories=["Red category"],
        )
    )
    got = box.call(
        "PATCH",
        f"/me/events/{event['id']}",
        json={
            "attendees": [{"emailAddress": {"name": "Dan", "address": "dan@contoso.com"}, "type": "optional"}]
        },
    ).json()
    assert [a["emailAddress"]["address"] for a in got["attendees"]] == ["dan@contoso.com"]
    assert got["attendees"][0]["status"] == {"response": "none", "time": "0001-01-01T00:00:00Z"}
    assert got["location"]["displayName"] == "Room 1" and got["categories"] == ["Red category"]
    assert got["subject"] == "Meet"


def test_all_day_requires_midnight_start_and_end(box: Mailbox) -> None:
    bad = box.call(
        "POST", "/me/events", json=timed("Day", "2024-05-10T08:00:00", "2024-05-11T00:00:00", isAllDay=True)
    )
    assert bad.status_code == 400
    good = box.call(
        "POST",
        "/me/events",
        json=timed("Day", "2024-05-10T00:00:00", "2024-05-11T00:00:00", "Europe/Berlin", isAllDay=True),
    )
    assert good.status_code == 201 and good.json()["isAllDay"] is True


def test_windows_and_iana_zones_are_accepted_and_unknown_zones_rejected(box: Mailbox) -> None:
    iana = box.create(timed("A", "2024-05-10T10:00:00", "2024-05-10T11:00:00", "America/Los_Angeles"))
    windows = box.create(timed("B", "2024-05-10T10:00:00", "2024-05-10T11:00:00", "Pacific Standard Time"))
    assert iana["originalStartTimeZone"] == windows["originalStartTimeZone"] == "Pacific Standard Time"
    assert iana["start"] == windows["start"] == {"dateTime": "2024-05-10T17:00:00.0000000", "timeZone": "UTC"}
    bad = box.call(
        "POST", "/me/events", json=timed("C", "2024-05-10T10:00:00", "2024-05-10T11:00:00", "Mars/Base")
    )
    assert bad.status_code == 400


@pytest.mark.parametrize(
    "recurrence",
    [
        {
            "pattern": {"type": "fortnightly", "interval": 1},
            "range": {"type": "noEnd", "startDate": "2024-05-13"},
        },
        {
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"], "dayOfMonth": 13},
            "range": {"type": "noEnd", "startDate": "2024-05-13"},
        },
        {
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
            "range": {"type": "numbered", "startDate": "2024-05-13", "numberOfOccurrences": 0},
        },
        {
            "pattern": {"type": "absoluteMonthly", "interval": 1},
            "range": {"type": "noEnd", "startDate": "2024-05-13"},
        },
    ],
)
def test_unsupported_recurrence_values_are_rejected(box: Mailbox, recurrence: dict) -> None:
    body = timed("R", "2024-05-13T09:00:00", "2024-05-13T10:00:00", recurrence=recurrence)
    assert box.call("POST", "/me/events", json=body).status_code == 400


def test_recurrence_with_filler_fields_echoed_back_is_accepted(box: Mailbox) -> None:
    master = box.create(weekly("S", "2024-05-13T09:00:00", "2024-05-13T10:00:00", ["monday"], "2024-06-03"))
    again = box.call(
        "POST",
        "/me/events",
        json=timed("S2", "2024-05-13T09:00:00", "2024-05-13T10:00:00", recurrence=master["recurrence"]),
    )
    assert again.status_code == 201 and again.json()["recurrence"] == master["recurrence"]


def test_series_follows_the_recurrence_zone_across_dst(box: Mailbox) -> None:
    master = box.create(
        weekly(
            "Berlin",
            "2024-03-25T09:00:00",
            "2024-03-25T10:00:00",
            ["monday"],
            "2024-04-08",
            "W. Europe Standard Time",
        )
    )
    window = {"startDateTime": "2024-03-01T00:00:00Z", "endDateTime": "2024-05-01T00:00:00Z"}
    got = box.call("GET", f"/me/events/{master['id']}/instances", params=window).json()["value"]
    # 09:00 Berlin wall-clock: UTC+1 before the 2024-03-31 switch, UTC+2 after it
    assert [i["start"]["dateTime"][:16] for i in got] == [
        "2024-03-25T08:00",
        "2024-04-01T07:00",
        "2024-04-08T07:00",
    ]
    assert len({i["iCalUId"] for i in got}) == 3  # v1.0 iCalUId differs per occurrence (provider rule 23)


def test_event_list_holds_masters_and_singles_and_pages_with_skip(box: Mailbox) -> None:
    box.create(weekly("Series", "2024-05-13T09:00:00", "2024-05-13T10:00:00", ["monday"], "2024-06-03"))
    for n in range(3):
        box.create(timed(f"Single {n}", f"2024-05-1{n}T10:00:00", f"2024-05-1{n}T11:00:00"))
    page = box.call("GET", f"/me/calendars/{box.calendar_id}/events", params={"$top": "3"}).json()
    assert [e["type"] for e in page["value"]] == ["seriesMaster", "singleInstance", "singleInstance"]
    assert page["@odata.nextLink"].startswith(box.emu.graph_api_url) and "$skip=3" in page["@odata.nextLink"]
    rest = box.call("GET", page["@odata.nextLink"]).json()
    assert len(rest["value"]) == 1 and "@odata.nextLink" not in rest
    masters = box.call("GET", "/me/events", params={"$filter": "type eq 'seriesMaster'"}).json()["value"]
    assert [e["subject"] for e in masters] == ["Series"]
    later = box.call(
        "GET", "/me/events", params={"$filter": "start/dateTime ge '2024-05-11T00:00:00'"}
    ).json()
    assert sorted(e["subject"] for e in later["value"]) == ["Series", "Single 1", "Single 2"]
    since = box.call("GET", "/me/events", params={"$filter": "lastModifiedDateTime ge 2024-01-01T00:00:00Z"})
    assert len(since.json()["value"]) == 4
    assert box.call("GET", "/me/events", params={"$filter": "contains(subject,'x')"}).status_code == 400


def test_select_and_expand_attachments(box: Mailbox) -> None:
    event = box.create(
        timed(
            "Files",
            "2024-05-10T10:00:00",
            "2024-05-10T11:00:00",
            attachments=[{"name": "a.txt", "contentType": "text/plain", "contentBytes": "aGVsbG8="}],
        )
    )
    assert event["hasAttachments"] is True
    got = box.call(
        "GET", f"/me/events/{event['id']}", params={"$select": "subject", "$expand": "attachments"}
    ).json()
    assert set(got) == {"@odata.context", "@odata.etag", "id", "subject", "attachments"}
    assert got["attachments"][0]["@odata.type"] == "#microsoft.graph.fileAttachment"
    assert box.call("GET", f"/me/events/{event['id']}", params={"$select": "nope"}).status_code == 400


def test_unknown_property_on_write_is_rejected(box: Mailbox) -> None:
    body = timed("Typo", "2024-05-10T10:00:00", "2024-05-10T11:00:00", subjct="oops")
    assert box.call("POST", "/me/events", json=body).json()["error"]["code"] == "RequestBodyRead"


def test_recurrence_patterns_expand_like_outlook() -> None:
    def expand(pattern: dict, rng: dict, start: str = "2024-01-31") -> list[str]:
        rec = normalize_recurrence({"pattern": pattern, "range": {"startDate": start, **rng}}, "UTC")
        dtstart = series_start(rec, datetime(2000, 1, 1, 9).time())
        return [
            d.date().isoformat()
            for d in occurrences_between(rec, dtstart, datetime(2024, 1, 1), datetime(2024, 12, 31))
        ]

    assert expand(
        {"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 31},
        {"type": "numbered", "numberOfOccurrences": 3},
    ) == ["2024-01-31", "2024-02-29", "2024-03-31"]
    assert expand(
        {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["friday"], "index": "last"},
        {"type": "endDate", "endDate": "2024-04-30"},
    ) == ["2024-02-23", "2024-03-29", "2024-04-26"]
    assert expand(
        {"type": "absoluteYearly", "interval": 1, "month": 7, "dayOfMonth": 4}, {"type": "noEnd"}
    ) == ["2024-07-04"]
    assert expand(
        {"type": "relativeYearly", "interval": 1, "month": 11, "daysOfWeek": ["thursday"], "index": "fourth"},
        {"type": "noEnd"},
    ) == ["2024-11-28"]
    assert expand({"type": "daily", "interval": 2}, {"type": "numbered", "numberOfOccurrences": 3}) == [
        "2024-01-31",
        "2024-02-02",
        "2024-02-04",
    ]
    assert (
        len(
            expand(
                {"type": "weekly", "interval": 1, "daysOfWeek": ["monday", "friday"]},
                {"type": "noEnd"},
                "2020-01-01",
            )
        )
        == 105
    )  # noEnd expansion capped to the window


def test_generated_events_load_fast_and_series_carry_cancellations() -> None:
    rng = random.Random(7)
    events = generate_outlook_events(rng, 50_000, now=datetime(2024, 6, 1, tzinfo=UTC))
    assert 0.07 < sum("recurrence" in e for e in events) / len(events) < 0.13
    assert 0.12 < sum(bool(e.get("isAllDay")) for e in events) / len(events) < 0.18
    state = GraphState()
    cal = state.add_calendar(Account("o1", "outlook", "me@contoso.com"), None, "Calendar")
    began = time.perf_counter()
    ids = state.import_events(cal, events[:3000])
    assert len(ids) == 3000 and time.perf_counter() - began < 10
    masters = [state.store.events[i] for i in ids if state.store.events[i].kind == "seriesMaster"]
    assert any(m.cancelled for m in masters) and any(m.exception_ids for m in masters)
    dumped = state.dump()
    restored = GraphState()
    restored.load(dumped)
    assert restored.dump()["events"] == dumped["events"]
    assert date.fromisoformat(events[0]["start"]["dateTime"][:10])


TEXT_BODY = "<b>&amp;</b> & < >\nsecond line\n\n  indented"
PREFER_TEXT = ['outlook.body-content-type="text"']


def test_a_text_body_is_kept_as_text_and_read_as_exchanges_html_by_default(box: Mailbox) -> None:
    made = box.create(timed("Notes", "2024-05-10T10:00:00", "2024-05-10T11:00:00",
                            body={"contentType": "text", "content": TEXT_BODY}))
    assert made["body"] == {"contentType": "text", "content": TEXT_BODY}  # the write's answer echoes text
    read = box.call("GET", f"/me/events/{made['id']}")
    html_body = read.json()["body"]
    assert html_body["contentType"] == "html" and "Preference-Applied" not in read.headers
    assert '<div class="PlainText">&lt;b&gt;&amp;amp;&lt;/b&gt; &amp; &lt; &gt;<br>\r\nsecond line<br>\r\n<br>\r\n' \
           "&nbsp;&nbsp;indented</div>" in html_body["content"]
    as_text = box.call("GET", f"/me/events/{made['id']}", prefer=PREFER_TEXT)
    assert as_text.json()["body"] == {"contentType": "text", "content": TEXT_BODY}
    assert as_text.headers["Preference-Applied"] == 'outlook.body-content-type="text"'
    assert as_text.json()["bodyPreview"] == "<b>&amp;</b> & < > second line indented"


def test_an_html_body_is_kept_as_html_and_read_as_text_when_preferred(box: Mailbox) -> None:
    html_body = "<html><head><style>p {margin:0}</style></head><body><div>One &amp; <b>two</b></div>" \
                "<div><br></div><div>three</div></body></html>"
    made = box.create(timed("Html", "2024-05-10T10:00:00", "2024-05-10T11:00:00",
                            body={"contentType": "HTML", "content": html_body}))
    assert made["body"] == {"contentType": "html", "content": html_body}
    as_text = box.call("GET", f"/me/events/{made['id']}", prefer=PREFER_TEXT).json()["body"]
    assert as_text == {"contentType": "text", "content": "One & two\r\n\r\nthree"}


def test_an_empty_text_body_reads_as_a_no_break_space_in_html(box: Mailbox) -> None:
    made = box.create(timed("Empty", "2024-05-10T10:00:00", "2024-05-10T11:00:00",
                            body={"contentType": "text", "content": ""}))
    html_body = box.call("GET", f"/me/events/{made['id']}").json()["body"]["content"]
    assert '<div class="PlainText">&nbsp;</div>' in html_body

"""Hostile provider payloads end to end: a page holding an item nested 400 levels deep, an unusable Outlook
item, and a description whose characters look like markup, through the real worker and emulator."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import psycopg

from tests.e2e.helpers import Linked, events, link, sync
from tests.e2e.test_google_faults import _timed
from tests.e2e.test_outlook_faults import _event
from tests.e2e.test_pushback_google import app_insert, app_update, at, row, table

TEXT = 'outlook.body-content-type="text"'
# Markup characters a person typed, with a blank line, an indented line and a run of spaces.
DESCRIPTION = "<b>&amp;</b> & < >\nsecond line\n\n  indented   three spaces"


def nested(levels: int) -> Any:
    """A JSON value that nests ``levels`` objects deep."""
    value: Any = "bottom"
    for _ in range(levels):
        value = {"deeper": value}
    return value


def _skips(db: psycopg.Connection, calendar_id: int) -> list[tuple[int, str, str]]:
    return db.execute('SELECT "runId", "extEventId", reason FROM sync_skip WHERE "calendarId" = %s '
                      'ORDER BY "skipId"', (calendar_id,)).fetchall()


def _cursor(db: psycopg.Connection, calendar_id: int) -> str:
    found = db.execute('SELECT "deltaLink" FROM calendar WHERE "calendarId" = %s', (calendar_id,)).fetchone()
    assert found is not None and found[0]
    return str(found[0])


def _runs_ok(cal: Linked, times: int) -> list[dict[str, Any]]:
    runs = []
    for _ in range(times):
        (run,) = sync(cal.user_id)["runs"]
        assert run["outcome"] == "ok", run
        runs.append(run)
    return runs


# --- 1. an item nested 400 levels deep ------------------------------------------------------------


def test_google_page_with_a_400_deep_item_imports_the_rest_and_records_it(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    _runs_ok(cal, 1)  # empty calendar: the first sync token is stored
    token = _cursor(db, cal.calendar_id)
    goods = [emu.google_insert(cal.ext_calendar_id, _timed(f"Good {i}", 1 + i, 9)) for i in range(6)]
    deep = {**_timed("Deep", 8, 9), "id": "deepitem400", "status": "confirmed",
            "extendedProperties": {"private": nested(400)}}
    # The provider keeps listing the deep item next to the good ones, twice; then the real listing.
    emu.add_fault(provider="google", endpoint="google.events.list", count=2, status=200,
                  body={"kind": "calendar#events", "items": [*goods[:3], deep, *goods[3:]], "nextSyncToken": token})
    first, second, third = _runs_ok(cal, 3)
    assert (first["eventsUpserted"], first["eventsSkipped"]) == (6, 1)
    assert (second["eventsUnchanged"], second["eventsSkipped"]) == (6, 1)
    assert third["eventsSkipped"] == 0
    live = events(db, cal.calendar_id, live_only=True)
    assert sorted(live) == sorted(g["id"] for g in goods) and "deepitem400" not in events(db, cal.calendar_id)
    skips = _skips(db, cal.calendar_id)
    assert [(r, e) for r, e, _ in skips] == [(first["runId"], "deepitem400"), (second["runId"], "deepitem400")]
    assert "nested more than 254 levels" in skips[0][2]


def test_outlook_delta_page_with_a_400_deep_item_imports_the_rest_and_records_it(worker, db, emu) -> None:
    cal = link(db, emu, "outlook")
    _runs_ok(cal, 1)
    delta_link = _cursor(db, cal.calendar_id)
    path = f"/calendars/{quote(cal.ext_calendar_id, safe='')}/events"
    goods = [emu.outlook("POST", path, _event(f"Good {i}", 1 + i)) for i in range(6)]
    deep = {**_event("Deep", 8), "id": "AAMkDEEP400=", "type": "singleInstance", "isAllDay": False,
            "singleValueExtendedProperties": [{"id": "String {x} Name deep", "value": nested(400)}]}
    emu.add_fault(provider="outlook", endpoint="graph.delta", count=2, status=200,
                  body={"value": [*goods[:3], deep, *goods[3:]], "@odata.deltaLink": delta_link})
    first, second, third = _runs_ok(cal, 3)
    assert (first["eventsUpserted"], first["eventsSkipped"]) == (6, 1)
    assert (second["eventsUnchanged"], second["eventsSkipped"]) == (6, 1)
    assert third["eventsSkipped"] == 0
    live = events(db, cal.calendar_id, live_only=True)
    assert sorted(live) == sorted(g["id"] for g in goods) and "AAMkDEEP400=" not in events(db, cal.calendar_id)
    skips = _skips(db, cal.calendar_id)
    assert [(r, e) for r, e, _ in skips] == [(first["runId"], "AAMkDEEP400="), (second["runId"], "AAMkDEEP400=")]
    assert "nested more than 254 levels" in skips[0][2]


def test_page_nested_deeper_than_the_json_parser_follows_still_imports_the_rest(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    _runs_ok(cal, 1)
    token = _cursor(db, cal.calendar_id)
    goods = [emu.google_insert(cal.ext_calendar_id, _timed(f"Good {i}", 1 + i, 9)) for i in range(3)]
    # 5,000 levels: no JSON encoder writes this, and Python's parser gives up after about 1,000.
    deep = ('{"id": "deepitem5000", "status": "confirmed", "summary": "Deep", '
            f'"start": {json.dumps(goods[0]["start"])}, "end": {json.dumps(goods[0]["end"])}, '
            '"extendedProperties": {"private": ' + '{"d": [' * 2500 + '"x"' + ']}' * 2500 + "}}")
    items = ", ".join([json.dumps(goods[0]), deep, *(json.dumps(g) for g in goods[1:])])
    page = f'{{"kind": "calendar#events", "items": [{items}], "nextSyncToken": {json.dumps(token)}}}'
    emu.add_fault(provider="google", endpoint="google.events.list", count=1, status=200, body_text=page)
    first, second = _runs_ok(cal, 2)
    assert (first["eventsUpserted"], first["eventsSkipped"]) == (3, 1) and second["eventsSkipped"] == 0
    assert sorted(events(db, cal.calendar_id)) == sorted(g["id"] for g in goods)
    ((_, ext, reason),) = _skips(db, cal.calendar_id)
    assert ext == "deepitem5000" and "nested more than 254 levels" in reason


# --- 2. an unusable Outlook item -------------------------------------------------------------------


def test_unusable_outlook_item_is_skipped_and_recorded_never_a_live_row(worker, db, emu) -> None:
    cal = link(db, emu, "outlook")
    _runs_ok(cal, 1)
    delta_link = _cursor(db, cal.calendar_id)
    good = {**_event("Good", 2), "id": "AAMkGOOD=", "type": "singleInstance", "isAllDay": False}
    unusable = {"id": "AAMkUNUSABLE=", "type": "singleInstance", "subject": ["x"], "start": "tomorrow",
                "end": 17, "isAllDay": "maybe"}
    no_times = {"id": "AAMkNOTIMES=", "type": "singleInstance", "subject": "No times", "isAllDay": False}
    emu.add_fault(provider="outlook", endpoint="graph.delta", count=1, status=200,
                  body={"value": [unusable, good, no_times], "@odata.deltaLink": delta_link})
    (run,) = _runs_ok(cal, 1)
    assert (run["eventsUpserted"], run["eventsSkipped"]) == (1, 2)
    assert sorted(events(db, cal.calendar_id)) == ["AAMkGOOD="]  # no row at all, live or not
    skips = {e: reason for _, e, reason in _skips(db, cal.calendar_id)}
    assert sorted(skips) == ["AAMkNOTIMES=", "AAMkUNUSABLE="]
    assert "subject" in skips["AAMkUNUSABLE="] and "start" in skips["AAMkNOTIMES="]
    # Every live row keeps the storage rule: a timed event has UTC dates and times.
    bad = db.execute('SELECT "extEventId" FROM cal_event WHERE status AND ("startDate" IS NULL OR "endDate" IS NULL '
                     'OR (NOT "linkAllDay" AND ("startTime" IS NULL OR "endTime" IS NULL)))').fetchall()
    assert bad == []
    _runs_ok(cal, 1)  # the calendar goes on


# --- 3. a description that looks like markup, both ways --------------------------------------------


def _outlook_view(emu: Any, ext: str, prefer: str | None = None) -> dict[str, Any]:
    """The event as Graph answers a read (HTML body by default, text with the Prefer header)."""
    headers = {"Prefer": prefer} if prefer else {}
    response = emu.session.get(f"{emu.admin_url}/outlook/events/{quote(ext, safe='')}", headers=headers, timeout=30)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def test_app_description_with_markup_characters_reads_the_same_in_outlook_and_back(worker, db, emu) -> None:
    cal = link(db, emu, "outlook")
    event_id = app_insert(db, cal, "Notes", at(2, 12), at(2, 13), description=DESCRIPTION)
    (run,) = _runs_ok(cal, 1)
    assert run["pushCreated"] == 1
    ext = row(db, event_id)["extEventId"]
    # Outlook keeps exactly what the user typed, as text (not markup it would render as "& &").
    assert _outlook_view(emu, ext, TEXT)["body"] == {"contentType": "text", "content": DESCRIPTION}
    from autosync.normalize.bodytext import html_to_text

    html_body = _outlook_view(emu, ext)["body"]
    assert html_body["contentType"] == "html" and "&lt;b&gt;&amp;amp;&lt;/b&gt; &amp; &lt; &gt;<br>" in html_body[
        "content"]
    assert html_to_text(html_body["content"]).replace("\xa0", " ").strip() == DESCRIPTION
    # Graph's HTML comes back on the next syncs: nothing changes, nothing is pushed again.
    hash_after_push = row(db, event_id)["contentHash"]
    emu.clear_requests()
    for later in _runs_ok(cal, 2):
        assert (later["eventsUpserted"], later["pushCreated"], later["pushUpdated"]) == (0, 0, 0), later
    after = row(db, event_id)
    assert after["description"] == DESCRIPTION and after["contentHash"] == hash_after_push
    assert [o for o in table(db, "event_outbox", "outboxId") if o["doneAt"] is None] == []
    assert emu.requests(provider="outlook", endpoint="graph.events.update")["total"] == 0
    # An app edit of the title leaves the body alone; an edit of the description sends text again.
    app_update(db, event_id, eventName="Notes 2")
    assert _runs_ok(cal, 1)[0]["pushUpdated"] == 1
    assert _outlook_view(emu, ext, TEXT)["body"]["content"] == DESCRIPTION
    app_update(db, event_id, description=DESCRIPTION + "\nmore & <more>")
    assert _runs_ok(cal, 1)[0]["pushUpdated"] == 1
    assert _outlook_view(emu, ext, TEXT)["body"] == {"contentType": "text",
                                                      "content": DESCRIPTION + "\nmore & <more>"}
    assert _runs_ok(cal, 1)[0]["eventsUpserted"] == 0


def test_outlook_html_description_reads_as_its_text_in_the_app_and_survives_an_app_edit(worker, db, emu) -> None:
    cal = link(db, emu, "outlook")
    # What Outlook on the web writes when a person types the description above in its editor.
    html_body = ('<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
                 '<style type="text/css" style="display:none">P {margin-top:0;margin-bottom:0;}</style></head>'
                 '<body dir="ltr"><div class="elementToProof" style="font-family: Aptos; font-size: 12pt">'
                 "&lt;b&gt;&amp;amp;&lt;/b&gt; &amp; &lt; &gt;</div>"
                 '<div class="elementToProof">second <b>line</b></div><div class="elementToProof"><br></div>'
                 '<div class="elementToProof">&nbsp; indented&nbsp;&nbsp; three spaces</div></body></html>')
    made = emu.outlook("POST", f"/calendars/{quote(cal.ext_calendar_id, safe='')}/events",
                       {**_event("From Outlook", 2), "body": {"contentType": "html", "content": html_body}})
    (run,) = _runs_ok(cal, 1)
    assert run["eventsUpserted"] == 1
    stored = events(db, cal.calendar_id)[made["id"]]
    assert stored["description"] == DESCRIPTION
    assert _runs_ok(cal, 1)[0]["eventsUpserted"] == 0  # stable: the same HTML reads the same text
    # The app renames the event: Outlook keeps its formatted body untouched.
    app_update(db, stored["eventId"], eventName="Renamed in the app")
    assert _runs_ok(cal, 1)[0]["pushUpdated"] == 1
    assert _outlook_view(emu, made["id"])["body"] == {"contentType": "html", "content": html_body}
    assert events(db, cal.calendar_id)[made["id"]]["description"] == DESCRIPTION

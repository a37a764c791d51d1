"""Hypothesis: pages mixing good and hostile provider items go through staging, reading back and
normalizing without failing; good items become storable events, hostile ones recorded skips with their
ids; an Outlook description reads the same whether Graph sends it as text or as Exchange's HTML."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from html import escape
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autosync.emulator.graph_body import exchange_html
from autosync.errors import NormalizeError
from autosync.model import Event, Skipped
from autosync.normalize.bodytext import plain_text
from autosync.normalize.google import event_from_google, page_from_google
from autosync.normalize.outlook import event_from_graph, page_from_graph
from autosync.store.events import row_of
from autosync.store.runs import page_json
from tests.payloads import (
    descriptions,
    google_good,
    google_hostile,
    graph_good,
    graph_hostile,
    lone_surrogates,
    pages,
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _staged_and_read_back(items: list[Any]) -> list[Any]:
    """What the importer reads: the page as staged in jsonb (orjson text), parsed again."""
    staged: list[Any] = orjson.loads(page_json({"items": items, "meta": {}}))["items"]
    return staged


def _storable(event: Event) -> None:
    """The storage rule of cal_event: timed = UTC datetimes, all-day = first and last day; and a row."""
    if event.all_day:
        assert type(event.start) is date and type(event.end) is date and event.start <= event.end
    else:
        assert isinstance(event.start, datetime) and isinstance(event.end, datetime)
        assert event.start.utcoffset() == UTC.utcoffset(None) and event.start <= event.end
    row_of(event)  # every column value can be built (providerData included)


def _check(events: list[Event], skipped: list[Skipped], good: set[str], bad: set[str]) -> None:
    assert {e.ext_id for e in events} == good
    assert {s.ext_id for s in skipped} == bad and all(s.reason for s in skipped)
    for event in events:
        _storable(event)


@SETTINGS
@given(pages(graph_good, graph_hostile))
def test_outlook_page_imports_every_good_item_and_skips_every_hostile_one(page: Any) -> None:
    items, good, bad = page
    events, skipped, removed = page_from_graph(_staged_and_read_back(items))
    assert removed == []
    _check(events, skipped, good, bad)


@SETTINGS
@given(pages(google_good, google_hostile))
def test_google_page_imports_every_good_item_and_skips_every_hostile_one(page: Any) -> None:
    items, good, bad = page
    events, skipped = page_from_google(_staged_and_read_back(items), calendar_tz="Europe/Berlin")
    _check(events, skipped, good, bad)


@SETTINGS
@given(st.one_of(graph_hostile("AAMkONE="), google_hostile("AAMkONE=")))
def test_an_item_fetched_one_by_one_is_refused_with_its_id_and_a_reason(item: dict[str, Any]) -> None:
    """Series masters and /instances items are not staged: the normalizer alone must refuse them."""
    normalize = event_from_graph if "type" in item else event_from_google
    with pytest.raises(NormalizeError) as refused:
        normalize(item)
    assert refused.value.ext_id == "AAMkONE=" and refused.value.reason


@SETTINGS
@given(graph_good("AAMkSURR="), lone_surrogates)
def test_a_lone_surrogate_is_repaired_not_a_reason_to_skip(item: dict[str, Any], broken: str) -> None:
    item["subject"] = broken
    events, skipped, _ = page_from_graph(_staged_and_read_back([item]))
    assert skipped == [] and "\ufffd" in events[0].summary
    _storable(events[0])


def _graph_item(body: dict[str, str]) -> dict[str, Any]:
    return {"id": "AAMkDESC=", "type": "singleInstance", "body": body, "isAllDay": False,
            "start": {"dateTime": "2026-03-01T09:00:00.0000000", "timeZone": "UTC"},
            "end": {"dateTime": "2026-03-01T10:00:00.0000000", "timeZone": "UTC"}}


@settings(max_examples=400, deadline=None)
@given(descriptions)
def test_outlook_description_reads_the_same_as_text_and_as_exchanges_html(description: str) -> None:
    as_text = event_from_graph(_graph_item({"contentType": "text", "content": description}))
    as_html = event_from_graph(_graph_item({"contentType": "html", "content": exchange_html(description)}))
    assert as_text.description == as_html.description == plain_text(description)
    assert as_text.content_hash() == as_html.content_hash()  # no rewrite when Graph switches renderings
    assert plain_text(as_text.description) == as_text.description


def _outlook_editor_html(description: str) -> str:
    """HTML as Outlook's editor writes typed text: a <div> per line, <br> in an empty one, &nbsp; runs."""
    lines = description.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ").split("\n")
    divs = "".join('<div class="elementToProof">' + (re.sub(r"^ +| {2,}", lambda m: "&nbsp;" * len(m.group()),
                                                             escape(line, quote=False)) or "<br>") + "</div>"
                   for line in lines)
    return f'<html><head><style type="text/css">P {{margin:0}}</style></head><body dir="ltr">{divs}</body></html>'


@settings(max_examples=400, deadline=None)
@given(descriptions)
def test_outlook_editor_html_reads_as_the_text_that_was_typed(description: str) -> None:
    got = event_from_graph(_graph_item({"contentType": "html", "content": _outlook_editor_html(description)}))
    assert got.description == plain_text(description)

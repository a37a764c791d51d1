"""Outlook items are checked as strictly as Google's: what Graph would never send is refused with the
property named; every shape Graph does send (nulls, bare occurrences, partial exceptions, tombstones)
still normalizes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from autosync.errors import NormalizeError
from autosync.normalize.outlook import JSON_TYPES, event_from_graph, page_from_graph

START = {"dateTime": "2026-03-02T09:00:00.0000000", "timeZone": "UTC"}
END = {"dateTime": "2026-03-02T10:00:00.0000000", "timeZone": "UTC"}


def item(**fields: Any) -> dict[str, Any]:
    return {"id": "AAMkONE=", "type": "singleInstance", "subject": "One", "isAllDay": False,
            "start": START, "end": END, **fields}


def test_the_unusable_item_of_issue_21_is_refused_not_stored_without_dates() -> None:
    bad = {"id": "AAMkBAD=", "subject": ["x"], "start": "tomorrow", "end": 17, "isAllDay": "maybe"}
    events, skipped, _ = page_from_graph([bad, item()])
    assert [e.ext_id for e in events] == ["AAMkONE="]
    assert [(s.ext_id, s.reason) for s in skipped] == [("AAMkBAD=", "subject is an array, expected a string")]


@pytest.mark.parametrize("name", sorted(JSON_TYPES))
def test_a_property_of_the_wrong_json_type_is_refused_by_name(name: str) -> None:
    wrong: object = 17 if JSON_TYPES[name] is not int else "17"
    with pytest.raises(NormalizeError) as refused:
        event_from_graph(item(**{name: wrong}))
    assert refused.value.ext_id == "AAMkONE=" and refused.value.reason.startswith(name)


@pytest.mark.parametrize("fields", [
    {"isAllDay": 1}, {"reminderMinutesBeforeStart": True}, {"reminderMinutesBeforeStart": 2**40},
    {"start": {"dateTime": 20260302, "timeZone": "UTC"}}, {"end": {"dateTime": END["dateTime"], "timeZone": 0}},
    {"body": {"contentType": "markdown", "content": "x"}}, {"body": {"contentType": "html", "content": ["x"]}},
    {"start": {"dateTime": "tomorrow", "timeZone": "UTC"}}, {"end": {"dateTime": "", "timeZone": "UTC"}},
    {"start": None}, {"end": None}, {"isAllDay": True, "start": {"dateTime": "0001-01-01T00:00:00"}},
    {"start": {"dateTime": "9999-12-31T23:30:00", "timeZone": "Pacific Standard Time"},
     "end": {"dateTime": "9999-12-31T23:45:00", "timeZone": "Pacific Standard Time"}},
])
def test_unusable_values_are_refused(fields: dict[str, Any]) -> None:
    events, skipped, _ = page_from_graph([item(**fields)])
    assert events == [] and skipped[0].ext_id == "AAMkONE=" and skipped[0].reason


def test_nulls_and_absent_properties_are_what_graph_sends_and_pass() -> None:
    nulls = {name: None for name in JSON_TYPES if name not in ("start", "end")}
    event = event_from_graph({"id": "AAMkNULL=", "start": START, "end": END, **nulls})
    assert (event.summary, event.all_day, event.start) == ("", False, datetime(2026, 3, 2, 9, tzinfo=UTC))


def test_a_bare_occurrence_and_a_tombstone_pass() -> None:
    bare = {"@odata.etag": 'W/"x"', "id": "AAMkOCC=", "seriesMasterId": "AAMkMASTER=", "type": "occurrence",
            "start": START, "end": END}
    assert event_from_graph(bare).start == datetime(2026, 3, 2, 9, tzinfo=UTC)
    removed = event_from_graph({"@odata.type": "#microsoft.graph.event", "id": "AAMkGONE=",
                                "@removed": {"reason": "deleted"}})
    assert removed.cancelled


def test_a_partial_exception_inherits_what_it_lacks_from_its_master() -> None:
    master = event_from_graph(item(id="AAMkMASTER=", type="seriesMaster", subject="Standup",
                                   body={"contentType": "html", "content": "<p>Agenda &amp; notes</p>"},
                                   recurrence={"pattern": {"type": "daily", "interval": 1},
                                               "range": {"type": "noEnd", "startDate": "2026-03-02"}}))
    partial = {"id": "AAMkEXC=", "type": "exception", "seriesMasterId": "AAMkMASTER=", "start": START, "end": END}
    exception = event_from_graph(partial, master=master)
    assert (exception.summary, exception.description) == ("Standup", "Agenda & notes")

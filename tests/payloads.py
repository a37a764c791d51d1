"""Hypothesis strategies for provider payloads: good Google/Graph items and the hostile shapes seen in the
wild or in fuzzing (deep nesting, wrong JSON types, unparseable or out-of-range times, huge integers,
lone surrogates, descriptions full of markup characters). Shared by the property tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**31), 2**31), st.text(max_size=8))
# What a provider might put where an object, a string, a boolean or a time belongs.
WRONG = st.one_of(st.just(["x"]), st.just(17), st.just("tomorrow"), st.just("maybe"), st.just(True),
                  st.just({"dateTime": 5}), st.just([]), st.just(1.5))
# Characters a person types into a description, weighted towards markup and white space.
_DESCRIPTION_CHARS = st.one_of(
    st.sampled_from(["<", ">", "&", "&amp;", "&lt;", "<b>", "</b>", "<br>", '"', "'", " ", "  ", "   ", "\n",
                     "\n\n", "\t", "\xa0", "\r\n", "é", "😀", "—", "a", "b", "Z", "1", "&nbsp;", "<!--", "-->"]),
    st.characters(blacklist_categories=("Cs", "Cc")),
)
descriptions = st.lists(_DESCRIPTION_CHARS, max_size=40).map("".join)


def nested(levels: int, leaf: Any = "bottom", key: str = "deeper") -> Any:
    """A value ``levels`` containers deep, alternating objects and arrays."""
    value = leaf
    for level in range(levels):
        value = {key: value} if level % 2 else [value]
    return value


def deep_values(deepest: int = 1500) -> st.SearchStrategy[Any]:
    """Deeper than orjson can encode (254); past ~990 levels deeper than Python's own parser follows."""
    return st.integers(min_value=255, max_value=deepest).map(nested)


def unstorable(deepest: int = 1500) -> st.SearchStrategy[Any]:
    """Values JSON can carry but a store cannot: too deep, integers beyond 64 bits."""
    return st.one_of(deep_values(deepest), st.integers(min_value=2**64, max_value=2**80))

# Lone UTF-16 surrogates (a 255-character preview can split an emoji): repaired, never a reason to skip.
lone_surrogates = st.sampled_from(["\ud83d", "x\udc00y", "\ud83d\ud83d"])


@st.composite
def graph_good(draw: st.DrawFn, ext_id: str) -> dict[str, Any]:
    """A single-instance Graph event as calendarView/delta lists it (times in UTC, body HTML or text)."""
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=draw(st.integers(0, 500_000)))
    all_day = draw(st.booleans())
    if all_day:
        start = start.replace(hour=0, minute=0)
    end = start + timedelta(days=draw(st.integers(1, 3))) if all_day else start + timedelta(
        minutes=draw(st.integers(0, 600)))
    stamp = "%Y-%m-%dT%H:%M:%S.0000000"
    return {"@odata.etag": 'W/"ck"', "id": ext_id, "type": "singleInstance", "subject": draw(st.text(max_size=12)),
            "isAllDay": all_day, "isCancelled": False, "showAs": "busy",
            "body": {"contentType": draw(st.sampled_from(["html", "text"])), "content": draw(descriptions)},
            "start": {"dateTime": start.strftime(stamp), "timeZone": "UTC"},
            "end": {"dateTime": end.strftime(stamp), "timeZone": "UTC"},
            "originalStartTimeZone": draw(st.sampled_from(["UTC", "W. Europe Standard Time", "tzone://Microsoft/Custom"])),
            "location": {"displayName": draw(st.text(max_size=8))}, "attendees": [], "organizer": None,
            "isReminderOn": True, "reminderMinutesBeforeStart": draw(st.integers(0, 40_000)),
            "lastModifiedDateTime": "2026-01-01T00:00:00.0000000Z"}


# Graph properties and their JSON types (Python's bool is an int: a boolean is never a number here).
GRAPH_TYPED: dict[str, type] = {
    "subject": str, "body": dict, "isAllDay": bool, "isCancelled": bool, "showAs": str, "location": dict,
    "attendees": list, "organizer": dict, "isReminderOn": bool, "reminderMinutesBeforeStart": int,
    "start": dict, "end": dict, "seriesMasterId": str, "recurrence": dict,
}


def _wrong_for(expected: type) -> Any:
    def wrong(value: Any) -> bool:
        return not isinstance(value, expected) or (expected is int and isinstance(value, bool))

    return WRONG.filter(wrong)


@st.composite
def graph_hostile(draw: st.DrawFn, ext_id: str, deepest: int = 1500) -> dict[str, Any]:
    """A Graph item that must be skipped: a wrong type, bad or missing times, or an unstorable field."""
    item = draw(graph_good(ext_id))
    kind = draw(st.sampled_from(["wrong-type", "bad-time", "no-times", "unstorable", "issue-21"]))
    if kind == "wrong-type":
        name = draw(st.sampled_from(sorted(GRAPH_TYPED)))
        item[name] = draw(_wrong_for(GRAPH_TYPED[name]))
    elif kind == "bad-time":
        which = draw(st.sampled_from(["start", "end"]))
        item[which] = {**item[which], "dateTime": draw(st.sampled_from(
            ["not-a-time", "2026-13-01T00:00:00", "", "9999-12-31T23:00:00", "0001-01-01T00:00:00"]))}
        if item[which]["dateTime"].startswith("9999"):
            item[which]["timeZone"] = "Pacific Standard Time"
        elif item[which]["dateTime"].startswith("0001"):
            item.update(isAllDay=True, start={**item["start"], "dateTime": "0001-01-02T00:00:00"},
                        end={**item["end"], "dateTime": "0001-01-01T00:00:00"})
    elif kind == "no-times":
        for name in draw(st.sampled_from([("start",), ("end",), ("start", "end")])):
            del item[name]
    elif kind == "unstorable":
        item[draw(st.sampled_from(["singleValueExtendedProperties", "categories", "subject"]))] = draw(
            unstorable(deepest))
    else:
        item.update(subject=["x"], start="tomorrow", end=17, isAllDay="maybe")
    return item


@st.composite
def google_good(draw: st.DrawFn, ext_id: str) -> dict[str, Any]:
    """A Google event resource as events.list returns it."""
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=draw(st.integers(0, 500_000)))
    if draw(st.booleans()):
        first = start.date()
        times = {"start": {"date": first.isoformat()},
                 "end": {"date": (first + timedelta(days=draw(st.integers(1, 3)))).isoformat()}}
    else:
        end = start + timedelta(minutes=draw(st.integers(0, 600)))
        times = {"start": {"dateTime": start.isoformat(), "timeZone": "Europe/Berlin"},
                 "end": {"dateTime": end.isoformat(), "timeZone": "Europe/Berlin"}}
    return {"kind": "calendar#event", "etag": '"1"', "id": ext_id, "status": "confirmed",
            "summary": draw(st.text(max_size=12)), "description": draw(descriptions),
            "updated": "2026-01-01T00:00:00.000Z", "reminders": {"useDefault": True}, **times}


@st.composite
def google_hostile(draw: st.DrawFn, ext_id: str, deepest: int = 1500) -> dict[str, Any]:
    """A Google item that must be skipped: unstorable, bad times, or an unreadable reminder."""
    item = draw(google_good(ext_id))
    kind = draw(st.sampled_from(["unstorable", "bad-time", "no-start", "reminder"]))
    if kind == "unstorable":
        item[draw(st.sampled_from(["extendedProperties", "attachments", "summary"]))] = draw(unstorable(deepest))
    elif kind == "bad-time":
        item["start"] = {"dateTime": draw(st.sampled_from(["tomorrow", "9999-12-31T23:00:00"])),
                         "timeZone": "America/New_York"}
        item["end"] = {"dateTime": "9999-12-31T23:30:00", "timeZone": "America/New_York"}
    elif kind == "no-start":
        item["start"] = draw(WRONG)
    else:
        item["reminders"] = {"useDefault": False, "overrides": [{"method": "popup", "minutes": "soon"}]}
    return item


@st.composite
def pages(draw: st.DrawFn, good: Any, hostile: Any) -> tuple[list[dict[str, Any]], set[str], set[str]]:
    """(items, ids of good items, ids of hostile items): a page mixing both kinds, in random order."""
    kinds = draw(st.lists(st.booleans(), min_size=1, max_size=6))
    items = [draw(hostile(f"bad{i}") if bad else good(f"good{i}")) for i, bad in enumerate(kinds)]
    bad_ids = {f"bad{i}" for i, bad in enumerate(kinds) if bad}
    return items, {f"good{i}" for i, bad in enumerate(kinds) if not bad}, bad_ids

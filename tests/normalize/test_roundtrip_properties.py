"""Hypothesis: random timed/all-day events in random zones survive both providers' write/read unshifted."""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from hypothesis import given, settings
from hypothesis import strategies as st

from autosync.model import Event
from autosync.normalize.google import event_from_google, google_body
from autosync.normalize.outlook import event_from_graph, graph_body
from autosync.normalize.timezones import iana_name, windows_name, zone

ALL_ZONES = sorted(z for z in available_timezones() if not z.startswith(("posix/", "right/")))
# Mostly DST-observing zones, so transition nights come up often; plus every other zone now and then.
DST_ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
    "Australia/Sydney",
    "Europe/London",
    "America/Santiago",
    "Pacific/Auckland",
    "Asia/Tehran",
    "America/St_Johns",
    "Australia/Lord_Howe",
]
zones = st.one_of(st.sampled_from(DST_ZONES), st.sampled_from(ALL_ZONES))


@cache
def transitions(tz: str, year: int) -> tuple[datetime, ...]:
    """The UTC instants (to the minute) in ``year`` where ``tz`` changes its UTC offset."""
    where = ZoneInfo(tz)
    offset = lambda t: t.astimezone(where).utcoffset()  # noqa: E731
    marks = [datetime(year, m, 1, tzinfo=UTC) for m in range(1, 13)] + [datetime(year + 1, 1, 1, tzinfo=UTC)]
    found = []
    for low, high in itertools.pairwise(marks):
        if offset(low) == offset(high):
            continue  # (misses two changes within one month; fine for a test generator)
        while high - low > timedelta(minutes=1):
            mid = low + (high - low) / 2
            low, high = (mid, high) if offset(mid) == offset(low) else (low, mid)
        found.append(high.replace(second=0, microsecond=0))
    return tuple(found)


@st.composite
def timed_events(draw: st.DrawFn) -> Event:
    tz = draw(zones)
    near = transitions(tz, draw(st.integers(1975, 2037)))
    if near and draw(st.booleans()):  # half the time: within two hours of a DST change (folds, gaps)
        start = draw(st.sampled_from(near)) + timedelta(minutes=draw(st.integers(-120, 120)))
    else:
        day = draw(st.dates(date(1971, 1, 1), date(2037, 12, 31)))
        start = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
            minutes=draw(st.integers(0, 1439))
        )
    end = start + timedelta(minutes=draw(st.integers(0, 3 * 24 * 60)))
    return Event(
        ext_id="evt1",
        summary=draw(st.text(max_size=20)),
        start=start,
        end=end,
        start_tz=tz,
        end_tz=draw(st.sampled_from([tz, "UTC", "Asia/Tokyo"])),
    )


@st.composite
def all_day_events(draw: st.DrawFn) -> Event:
    first = draw(st.dates(date(1971, 1, 1), date(2037, 12, 31)))
    last = first + timedelta(days=draw(st.integers(0, 14)))
    return Event(ext_id="evt2", all_day=True, start=first, end=last)


@settings(max_examples=300, deadline=None)
@given(st.one_of(timed_events(), all_day_events()))
def test_google_write_then_read_returns_the_same_event(event: Event) -> None:
    item = google_body(event) | {"id": event.ext_id}
    assert event_from_google(item) == event


def _graph_echo(body: dict[str, Any], ext_id: str) -> dict[str, Any]:
    """Graph's answer without a Prefer header: times in UTC, the zone kept as originalStartTimeZone."""
    item = copy.deepcopy(body) | {"id": ext_id, "type": "singleInstance"}
    item["originalStartTimeZone"] = body["start"]["timeZone"]
    item["originalEndTimeZone"] = body["end"]["timeZone"]
    if not body["isAllDay"]:
        for key in ("start", "end"):
            wall = datetime.fromisoformat(body[key]["dateTime"]).replace(tzinfo=zone(body[key]["timeZone"]))
            item[key] = {
                "dateTime": wall.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000"),
                "timeZone": "UTC",
            }
    return item


@settings(max_examples=300, deadline=None)
@given(st.one_of(timed_events(), all_day_events()))
def test_graph_write_then_read_keeps_the_instants_and_the_windows_zone(event: Event) -> None:
    back = event_from_graph(_graph_echo(graph_body(event), event.ext_id))
    assert (back.all_day, back.start, back.end) == (event.all_day, event.start, event.end)
    assert back.summary == event.summary
    if event.all_day:
        assert back.start_tz is None
        return
    # The zone may come back as the canonical IANA zone of the same Windows zone, or as UTC where
    # the name has no Windows equivalent or the wall time was ambiguous (a DST fold).
    assert back.start_tz == "UTC" or windows_name(back.start_tz) == windows_name(event.start_tz)
    assert back.start_tz == "UTC" or iana_name(windows_name(event.start_tz)) == back.start_tz

"""The emulator's window test for a recurring series: stops at the first instance, same answer as a full expansion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from autosync.emulator.google_time import MAX_INSTANCES, build_ruleset, occurrences, occurs, zone
from tests.emulator.conftest import GoogleUser, timed

BERLIN = zone("Europe/Berlin")
RULES = [
    "RRULE:FREQ=DAILY",
    "RRULE:FREQ=DAILY;COUNT=3",
    "RRULE:FREQ=WEEKLY;BYDAY=MO,WE;UNTIL=20240620T000000Z",
    "RRULE:FREQ=MONTHLY;BYMONTHDAY=31",
    "RRULE:FREQ=YEARLY;COUNT=2",
    "RRULE:FREQ=DAILY;INTERVAL=400",
]


def _series(rule: str, all_day: bool, exdate_days: list[int]) -> dict[str, Any]:
    if all_day:
        ex = [f"EXDATE;VALUE=DATE:{(datetime(2024, 6, 1) + timedelta(days=d)):%Y%m%d}" for d in exdate_days]
        return {"start": {"date": "2024-06-01"}, "end": {"date": "2024-06-02"}, "recurrence": [rule, *ex]}
    ex = [f"EXDATE;TZID=Europe/Berlin:{(datetime(2024, 6, 1, 9) + timedelta(days=d)):%Y%m%dT%H%M%S}"
          for d in exdate_days]
    return {"start": {"dateTime": "2024-06-01T09:00:00+02:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": "2024-06-01T09:30:00+02:00", "timeZone": "Europe/Berlin"}, "recurrence": [rule, *ex]}


def _expanded(master: dict[str, Any], after: datetime, before: datetime) -> bool:
    """The answer the emulator gave before: expand up to MAX_INSTANCES starts from ``after``, then test."""
    start = master["start"]
    if "date" in start:
        dtstart = datetime(2024, 6, 1)
        lo, hi = after.astimezone(BERLIN).replace(tzinfo=None), before.astimezone(BERLIN).replace(tzinfo=None)
    else:
        dtstart = datetime(2024, 6, 1, 9, tzinfo=BERLIN)
        lo, hi = after, before
    rules = build_ruleset(master["recurrence"], dtstart)
    return any(v < hi for v in islice(rules.xafter(lo, inc=True), MAX_INSTANCES))


@settings(max_examples=300, deadline=None)
@given(rule=st.sampled_from(RULES), all_day=st.booleans(),
       exdates=st.lists(st.integers(0, 40), max_size=4),
       start_hours=st.integers(-24 * 40, 24 * 800), length_hours=st.integers(0, 24 * 60))
def test_first_instance_answers_like_a_full_expansion(rule: str, all_day: bool, exdates: list[int],
                                                      start_hours: int, length_hours: int) -> None:
    master = _series(rule, all_day, exdates)
    after = datetime(2024, 6, 1, 7, tzinfo=UTC) + timedelta(hours=start_hours)
    before = after + timedelta(hours=length_hours)
    expected = _expanded(master, after, before)
    assert occurs(master, after, before, BERLIN) is expected
    assert bool(occurrences(master, after, before, BERLIN)) is expected


def test_window_bounds_an_instance_start_inclusive_below_exclusive_above() -> None:
    master = _series("RRULE:FREQ=DAILY;COUNT=3", False, [])
    first = datetime(2024, 6, 1, 7, tzinfo=UTC)  # 09:00 Berlin
    assert occurs(master, first, first + timedelta(seconds=1), BERLIN)
    assert not occurs(master, first - timedelta(hours=1), first, BERLIN)
    last = first + timedelta(days=2)
    assert occurs(master, last, last + timedelta(days=400), BERLIN)
    assert not occurs(master, last + timedelta(seconds=1), last + timedelta(days=400), BERLIN)


def test_listing_with_time_bounds_keeps_only_series_with_an_instance_inside(guser: GoogleUser) -> None:
    inside = guser.insert(timed("daily", "2024-05-01T09:00:00+02:00", "2024-05-01T09:30:00+02:00",
                                recurrence=["RRULE:FREQ=DAILY"]))
    excluded = guser.insert(timed("only one in range, excluded", "2024-05-01T09:00:00+02:00",
                                  "2024-05-01T09:30:00+02:00",
                                  recurrence=["RRULE:FREQ=MONTHLY;COUNT=3",
                                              "EXDATE;TZID=Europe/Berlin:20240601T090000"]))
    ended = guser.insert(timed("ended before", "2024-05-01T09:00:00+02:00", "2024-05-01T09:30:00+02:00",
                               recurrence=["RRULE:FREQ=DAILY;UNTIL=20240520T000000Z"]))
    later = guser.insert(timed("starts after", "2024-08-01T09:00:00+02:00", "2024-08-01T09:30:00+02:00",
                               recurrence=["RRULE:FREQ=WEEKLY"]))
    body = guser.list(timeMin="2024-05-25T00:00:00Z", timeMax="2024-06-20T00:00:00Z", showDeleted="true").json()
    ids = {i["id"] for i in body["items"]}
    assert inside["id"] in ids
    assert not ids & {excluded["id"], ended["id"], later["id"]}
    unbounded = {i["id"] for i in guser.list(timeMin="2024-05-25T00:00:00Z").json()["items"]}
    assert {inside["id"], excluded["id"], later["id"]} <= unbounded and ended["id"] not in unbounded


# The rule parse is cached per text without UNTIL and anchored with rrule.replace (google_time._rule):
# it must give the instances a fresh rrulestr parse gives, whatever the DTSTART, its zone and UNTIL.
PARSE_RULES = [*(r.partition(":")[2] for r in RULES), "FREQ=WEEKLY", "FREQ=MONTHLY;BYDAY=-1FR",
               "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", "FREQ=WEEKLY;UNTIL=20270101",
               "FREQ=DAILY;UNTIL=20270101T120000Z;INTERVAL=3", "FREQ=WEEKLY;WKST=SU;BYDAY=MO,TU;INTERVAL=2",
               "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1", "UNTIL=20261231;FREQ=DAILY"]


@given(rule=st.sampled_from(PARSE_RULES), day=st.integers(0, 800), minute=st.integers(0, 24 * 60 - 1),
       kind=st.sampled_from(["berlin", "utc", "naive"]))
@settings(max_examples=150, deadline=None)
def test_the_cached_rule_parse_gives_the_instances_of_a_fresh_parse(rule: str, day: int, minute: int,
                                                                    kind: str) -> None:
    from dateutil.rrule import rrulestr

    from autosync.emulator.google_time import _fix_until, _rule

    base = datetime(2025, 1, 1) + timedelta(days=day, minutes=minute)
    dtstart = {"berlin": base.replace(tzinfo=BERLIN), "utc": base.replace(tzinfo=UTC), "naive": base}[kind]
    fresh = list(islice(rrulestr(_fix_until(rule, dtstart), dtstart=dtstart), 50))
    assert list(islice(_rule(rule, dtstart), 50)) == fresh

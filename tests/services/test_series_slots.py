"""expected_slots: the occurrences a master promises, on its own wall clock, with EXDATE/RDATE."""

from __future__ import annotations

from datetime import UTC, date, datetime

from autosync.model import Event
from autosync.services.series import expected_slots

WINDOW = (datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC))


def _weekly(*extra: str, tz: str = "America/New_York") -> Event:
    start = datetime(2027, 1, 4, 15, 0, tzinfo=UTC)  # Monday 10:00 in New York
    return Event("m", start=start, end=start.replace(hour=16), start_tz=tz,
                 recurrence=("RRULE:FREQ=WEEKLY;BYDAY=MO", *extra))


def test_exdate_with_tzid_removes_that_occurrence() -> None:
    slots = expected_slots(_weekly("EXDATE;TZID=America/New_York:20270118T100000"), WINDOW)
    assert datetime(2027, 1, 18, 15, tzinfo=UTC) not in slots
    assert datetime(2027, 1, 11, 15, tzinfo=UTC) in slots and len(slots) == 3


def test_exdate_in_utc_on_a_zoned_series_removes_that_occurrence() -> None:
    slots = expected_slots(_weekly("EXDATE:20270111T150000Z"), WINDOW)
    assert datetime(2027, 1, 11, 15, tzinfo=UTC) not in slots and len(slots) == 3


def test_rdate_adds_an_occurrence() -> None:
    slots = expected_slots(_weekly("RDATE;TZID=America/New_York:20270120T100000"), WINDOW)
    assert datetime(2027, 1, 20, 15, tzinfo=UTC) in slots


def test_wall_clock_is_kept_across_dst() -> None:
    start = datetime(2027, 3, 8, 14, 0, tzinfo=UTC)  # Monday 09:00 EST, a week before clocks go forward
    master = Event("m", start=start, end=start.replace(hour=15), start_tz="America/New_York",
                   recurrence=("RRULE:FREQ=WEEKLY;COUNT=3",))
    slots = expected_slots(master, (datetime(2027, 3, 1, tzinfo=UTC), datetime(2027, 4, 1, tzinfo=UTC)))
    assert [s.hour for s in slots] == [14, 13, 13]  # 09:00 local before and after 14 March


def test_until_in_utc_includes_the_last_local_occurrence() -> None:
    master = _weekly()
    master = Event("m", start=master.start, end=master.end, start_tz=master.start_tz,
                   recurrence=("RRULE:FREQ=WEEKLY;BYDAY=MO;UNTIL=20270111T150000Z",))
    assert expected_slots(master, WINDOW) == [datetime(2027, 1, 4, 15, tzinfo=UTC),
                                              datetime(2027, 1, 11, 15, tzinfo=UTC)]


def test_all_day_series_yield_dates() -> None:
    master = Event("m", all_day=True, start=date(2027, 1, 1), end=date(2027, 1, 1),
                   recurrence=("RRULE:FREQ=DAILY;COUNT=3", "EXDATE;VALUE=DATE:20270102"))
    assert expected_slots(master, WINDOW) == [date(2027, 1, 1), date(2027, 1, 3)]


def test_pin_all_day_moves_a_reading_one_day_off_to_the_promised_day() -> None:
    from autosync.services.series import pin_all_day

    mondays = {date(2027, 1, 4), date(2027, 1, 11)}
    assert pin_all_day(date(2027, 1, 3), mondays) == date(2027, 1, 4)  # read a day early (far east)
    assert pin_all_day(date(2027, 1, 12), mondays) == date(2027, 1, 11)  # read a day late (far west)
    assert pin_all_day(date(2027, 1, 11), mondays) == date(2027, 1, 11)
    assert pin_all_day(date(2027, 1, 7), mondays) == date(2027, 1, 7)  # no promised neighbour: kept
    daily = {date(2027, 1, 4), date(2027, 1, 6)}
    assert pin_all_day(date(2027, 1, 5), daily) == date(2027, 1, 5)  # both neighbours promised: kept


def test_without_exdates_keeps_the_rule_and_drops_exclusion_lines() -> None:
    from autosync.services.series import without_exdates

    master = _weekly("EXDATE:20270111T150000Z")
    assert without_exdates(master).recurrence == ("RRULE:FREQ=WEEKLY;BYDAY=MO",)
    plain = _weekly()
    assert without_exdates(plain) is plain

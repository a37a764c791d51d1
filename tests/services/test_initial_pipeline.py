"""services/initial: the GIL switch interval a full listing runs under, and how far its lister reads ahead."""

from __future__ import annotations

import sys
import threading

import pytest

from autosync.services import initial


def test_the_interval_is_short_while_any_listing_runs_and_put_back_after_the_last() -> None:
    before = sys.getswitchinterval()
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, float] = {}

    def first() -> None:
        with initial._short_switch():
            first_in.set()
            second_in.wait(5)
            seen["both"] = sys.getswitchinterval()
        first_out.set()

    def second() -> None:
        first_in.wait(5)
        with initial._short_switch():
            second_in.set()
            first_out.wait(5)
            seen["second alone"] = sys.getswitchinterval()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen["both"] == seen["second alone"] == pytest.approx(initial.SWITCH_INTERVAL, abs=2e-6)
    assert sys.getswitchinterval() == before


def test_an_interval_already_shorter_is_left_as_it_is() -> None:
    before = sys.getswitchinterval()
    sys.setswitchinterval(initial.SWITCH_INTERVAL / 5)
    shorter = sys.getswitchinterval()  # as CPython keeps it (whole microseconds)
    try:
        with initial._short_switch():
            assert sys.getswitchinterval() == shorter
        assert sys.getswitchinterval() == shorter
    finally:
        sys.setswitchinterval(before)


def test_the_lister_reads_ahead_by_items_two_to_eight_pages() -> None:
    assert initial.pages_ahead(2500) == 2  # Google's pages
    assert initial.pages_ahead(1000) == 5  # Graph's
    assert initial.pages_ahead(8) == 8 and initial.pages_ahead(100_000) == 2 and initial.pages_ahead(0) == 8

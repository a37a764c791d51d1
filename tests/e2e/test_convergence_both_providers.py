"""Convergence for both providers under random schedules: the demo driver's changes and faults with
Hypothesis-chosen seeds and lengths, a sync through the worker after each step, then quiet rounds."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autosync.demo import Demo


def _sync_all(timeout: float = 60) -> None:
    from autosync.services import adhoc

    summary: dict[str, Any] = adhoc.wait(adhoc.enqueue(None, None), timeout)
    assert summary["done"], summary


@settings(max_examples=3, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=10_000), steps=st.integers(min_value=2, max_value=6),
       first_cycle=st.integers(min_value=1, max_value=20))
def test_random_changes_on_google_and_outlook_always_converge(worker, emulator, database_url, emu, seed: int,
                                                               steps: int, first_cycle: int) -> None:
    emu.reset()
    demo = Demo(database_url, emulator, users=2, events_per_calendar=6, seed=seed)
    demo.setup()
    _sync_all()
    for cycle in range(first_cycle, first_cycle + steps):  # the cycle number picks which faults fire
        demo.step(cycle)
        _sync_all()
    demo.quiesce()
    _sync_all()
    _sync_all()
    assert demo.convergence() == (True, [])

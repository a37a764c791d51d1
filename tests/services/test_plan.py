"""The one mass-delete guard (services/plan.py), decided as a pure function: table and properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autosync.services.plan import mass_delete

RULE = {"ratio": 0.5, "minimum": 10, "calendar_id": 7}


@pytest.mark.parametrize(("deletes", "before", "consent", "allowed"), [
    (0, 0, False, True),        # nothing to delete
    (9, 9, False, True),        # a calendar under the minimum may be emptied (documented choice)
    (10, 20, False, True),      # exactly half is not more than half
    (11, 20, False, False),     # more than half, at the minimum: refused
    (11, 12, False, False),
    (12, 20, True, True),       # an operator's consent lets it through
    (100, 100, False, False),   # a whole calendar
    (10, 10_000, False, True),
])
def test_guard_table(deletes: int, before: int, consent: bool, allowed: bool) -> None:
    for side in ("import", "sync-back"):
        verdict = mass_delete(deletes, before, consent=consent, side=side, **RULE)  # type: ignore[arg-type]
        assert verdict.allowed is allowed
        assert (verdict.reason is None) is allowed


def test_refusal_names_the_counts_the_preview_and_the_consent() -> None:
    imported = mass_delete(11, 12, consent=False, side="import", **RULE)
    assert imported.reason is not None and "import would delete 11 of 12 events" in imported.reason
    assert "--dry-run" in imported.reason and "--allow-mass-delete" in imported.reason
    pushed = mass_delete(11, 12, consent=False, side="sync-back", **RULE)
    assert pushed.reason is not None and "app side would delete 11 of 12 synced events" in pushed.reason


def test_a_ratio_that_is_not_a_number_refuses_instead_of_letting_everything_through() -> None:
    assert not mass_delete(100, 100, ratio=math.nan, minimum=10, consent=False, side="import",
                           calendar_id=1).allowed


@given(st.integers(0, 10_000), st.integers(0, 10_000), st.floats(0, 1), st.integers(0, 50))
def test_guard_properties(deletes: int, before: int, ratio: float, minimum: int) -> None:
    verdict = mass_delete(deletes, before, ratio=ratio, minimum=minimum, consent=False, side="import",
                          calendar_id=1)
    # Never fewer events before than the run deletes; refused exactly when over both thresholds.
    assert verdict.before == max(before, deletes)
    assert verdict.allowed is not (deletes >= max(1, minimum) and deletes > ratio * verdict.before)
    # Consent always passes; deleting fewer never turns an allowed run into a refused one.
    assert mass_delete(deletes, before, ratio=ratio, minimum=minimum, consent=True, side="import",
                       calendar_id=1).allowed
    if verdict.allowed and deletes:
        assert mass_delete(deletes - 1, before, ratio=ratio, minimum=minimum, consent=False, side="import",
                           calendar_id=1).allowed

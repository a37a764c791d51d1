"""Pure planning decisions shared by import and sync-back: the one mass-delete guard.

No I/O here: the services gather the numbers (from the store) and act on the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Side = Literal["import", "sync-back"]


@dataclass(frozen=True)
class Verdict:
    """What the mass-delete guard decided for one run and one direction."""

    allowed: bool
    deletes: int
    before: int
    reason: str | None = None


def mass_delete(deletes: int, before: int, *, ratio: float, minimum: int, consent: bool, side: Side,
                calendar_id: int) -> Verdict:
    """Decide whether a run may delete ``deletes`` of the ``before`` events a calendar holds on one side.

    The same rule for both directions, over the whole run (never per page): refused when the run would
    delete at least ``minimum`` events (never fewer than 1) and more than ``ratio`` of ``before``.
    ``before`` counts the events there were before the run's deletes (the deleted ones included).
    Below ``minimum`` deletes there is no guard: a calendar with a handful of events may be emptied
    by its owner, and an imported deletion only marks the row cancelled, so it can be undone.
    An operator's ``consent`` (`--allow-mass-delete`) lets any run through.
    """
    before = max(before, deletes)
    # Written so that a ratio that is not a number refuses (fails closed) instead of letting all through.
    if consent or deletes < max(1, minimum) or deletes <= ratio * before:
        return Verdict(True, deletes, before)
    where = "import would delete" if side == "import" else "app side would delete"
    held = "nothing applied" if side == "import" else "deletes held back"
    reason = (f"{where} {deletes} of {before} {'events' if side == 'import' else 'synced events'} "
              f"(> {ratio:.0%}); {held} — check the {'provider' if side == 'import' else 'app'} side "
              f"(`autosync sync --calendar {calendar_id} --dry-run` shows the run), then confirm with "
              f"`autosync sync --calendar {calendar_id} --allow-mass-delete`")
    return Verdict(False, deletes, before, reason)

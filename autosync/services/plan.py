"""Pure planning shared by import and sync-back: the mass-delete guard, conflicts, deletions, push actions.

No I/O here: the services gather the numbers (from the store) and act on the verdict.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from autosync.model import AppChange, Event

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


# --- conflicts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Conflict:
    """One decided conflict: who won, and the losing version to keep where an operator finds it."""

    ext_id: str
    outbox_id: int
    policy: str
    winner: str  # "app" or "provider"
    app_version: str | None  # JSON of the app's row when the provider won
    provider_version: str | None  # JSON of the provider's item when the app won


@dataclass(frozen=True)
class Resolution:
    """The provider changes that still apply after the conflicts are decided."""

    live: list[Event]
    deleted: list[str]
    cancelled: list[Event]
    conflicts: list[Conflict] = field(default_factory=list)


def winner(policy: str, provider_updated: datetime | None, app_changed: datetime) -> str:
    """Which side wins: 'app' or 'provider'.

    ``latest`` (default) compares the provider's last-modified time with the time the app changed
    the row; a provider change without a time (a deletion tombstone) loses to the app's edit, so
    nothing the user typed is dropped.
    """
    if policy in {"app", "provider"}:
        return policy
    if provider_updated is None:
        return "app"
    return "provider" if provider_updated.astimezone(UTC) > app_changed.astimezone(UTC) else "app"


def resolve(policy: str, live: list[Event], deleted: list[str], cancelled: list[Event],
            changes: list[AppChange]) -> Resolution:
    """Drop the provider side of events the app changed too when the app wins; every real conflict is kept.

    A provider item whose content hash is the row's (our own last write or import coming back:
    echo) is no conflict: it is dropped, so the app's pending change is neither recorded as a loser
    nor overwritten, and goes out as it is.
    """
    by_id: dict[str, Event | None] = {e.ext_id: e for e in live + cancelled}
    by_id.update({d: None for d in deleted})
    app_wins: set[str] = set()
    decided: list[Conflict] = []
    for change in changes:
        if change.ext_id not in by_id:
            continue
        event = by_id[change.ext_id]
        if event is not None and change.row_hash is not None and event.content_hash() == change.row_hash:
            app_wins.add(change.ext_id)
            continue
        who = winner(policy, event.updated if event else None, change.changed_at)
        provider_version = json.dumps(event.raw if event and event.raw else {"id": change.ext_id,
                                      "status": "cancelled"}, default=str)
        app_version = json.dumps(change.app_version or {"deleted": True, "op": change.op}, default=str)
        decided.append(Conflict(change.ext_id, change.outbox_id, policy, who,
                                app_version if who == "provider" else None,
                                provider_version if who == "app" else None))
        if who == "app":
            app_wins.add(change.ext_id)
    return Resolution([e for e in live if e.ext_id not in app_wins], [d for d in deleted if d not in app_wins],
                      [e for e in cancelled if e.ext_id not in app_wins], decided)


# --- import ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sorted:
    """A page's events by what they do to the store."""

    live: list[Event]
    cancelled_instances: list[Event]  # one occurrence of a series cancelled: the row is kept, marked
    deleted: list[str]  # tombstones of whole events (and series)


def sort_events(events: list[Event]) -> Sorted:
    """Live events, cancelled occurrences and deletions (tombstones) of one page."""
    out = Sorted([], [], [])
    for e in events:
        if not e.cancelled:
            out.live.append(e)
        elif e.recurring_event_id:
            out.cancelled_instances.append(e)
        else:
            out.deleted.append(e.ext_id)
    return out


@dataclass(frozen=True)
class Deletes:
    """What a page does with deletions: apply now (the run's last page) or record for the last page."""

    apply: list[str]
    record: list[str]
    unrecord: list[str]  # recorded by an earlier page, listed live again by this one


def page_deletes(found: list[str], live_ids: list[str], *, last_page: bool, recorded: list[str] | None = None,
                 earlier: bool = False) -> Deletes:
    """Deletions are decided over the whole run: pages record them, the last page applies them all.

    ``found``: the deletions this page found; ``recorded``: those earlier pages recorded (read on
    the last page); ``earlier``: whether earlier pages recorded any (known on every page). An event
    an earlier page found deleted and a later page lists live again (restored at the provider) is
    not deleted.
    """
    if not last_page:
        return Deletes([], list(dict.fromkeys(found)), list(live_ids) if earlier else [])
    live = set(live_ids)
    return Deletes(list(dict.fromkeys([x for x in recorded or [] if x not in live] + found)), [], [])


# --- sync-back -------------------------------------------------------------------------------------


def push_action(op: str, ext_id: str | None, deletes_held: bool) -> str:
    """What one due outbox entry does: create, update, delete, or hold (a delete the guard holds back)."""
    if op == "delete":
        return "hold" if deletes_held else "delete"
    return "update" if ext_id else "create"

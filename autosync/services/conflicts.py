"""Both sides changed one event: the one policy (plan.resolve) decides, and the loser is recorded."""

from __future__ import annotations

from dataclasses import dataclass

from autosync import metrics
from autosync.model import Event
from autosync.services import plan
from autosync.services.context import App
from autosync.store.api import Tx
from autosync.store.runs import RunContext


@dataclass(frozen=True)
class Resolved:
    """The provider changes to apply, and how many real conflicts were decided."""

    live: list[Event]
    deleted: list[str]
    cancelled: list[Event]
    conflicts: int = 0


def resolve(app: App, tx: Tx, run: RunContext, live: list[Event],
            deleted: list[str], cancelled: list[Event]) -> Resolved:
    """Decide the conflicts of a page (plan.resolve) and record them: the loser's version is kept,
    and a push the provider's change beat is closed."""
    ids = {e.ext_id for e in live + cancelled} | set(deleted)
    if not ids:
        return Resolved(live, deleted, cancelled)
    changes = tx.app_changes(run.calendar_id, list(ids))
    if not changes:
        return Resolved(live, deleted, cancelled)
    out = plan.resolve(app.settings.conflict_policy, live, deleted, cancelled, changes)
    for c in out.conflicts:
        if not run.dry_run:  # a dry run's writes are rolled back; its conflicts are only reported
            metrics.conflict(run.calendar_type, c.winner)
        tx.record_conflict(run.calendar_id, c.ext_id, policy=c.policy, winner=c.winner, app=c.app_version,
                           provider=c.provider_version, outbox_id=c.outbox_id)
        if c.winner == "provider":
            tx.supersede(c.outbox_id)
    return Resolved(out.live, out.deleted, out.cancelled, len(out.conflicts))

"""Both sides changed one event: one configurable policy decides, and the loser is recorded."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from autosync import metrics
from autosync.model import Event
from autosync.services.context import App
from autosync.store.conflicts import PENDING, RECORD, SUPERSEDE
from autosync.store.db import Conn
from autosync.store.runs import RunContext


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


@dataclass(frozen=True)
class Resolved:
    """The provider changes to apply, and how many real conflicts were decided."""

    live: list[Event]
    deleted: list[str]
    cancelled: list[Event]
    conflicts: int = 0


def resolve(app: App, conn: Conn, run: RunContext, live: list[Event],
            deleted: list[str], cancelled: list[Event]) -> Resolved:
    """Drop the provider side of events the app changed too, when the app wins; record every loser.

    A provider item whose content hash is the row's (our own last write or import, unchanged) is no
    conflict: it is dropped so the app's pending change is neither recorded as a loser nor overwritten.
    """
    by_id: dict[str, Event | None] = {e.ext_id: e for e in live + cancelled}
    by_id.update({d: None for d in deleted})
    if not by_id:
        return Resolved(live, deleted, cancelled)
    rows = conn.execute(PENDING, {"c": run.calendar_id, "ids": list(by_id)}).fetchall()
    if not rows:
        return Resolved(live, deleted, cancelled)
    policy = app.settings.conflict_policy
    app_wins: set[str] = set()
    decided = 0
    for row in rows:
        event = by_id.get(row["ext"])
        if event is not None and row["hash"] is not None and event.content_hash() == row["hash"]:
            app_wins.add(row["ext"])  # our own last write (or import) coming back: no provider change,
            continue                  # so no conflict; the app's pending change goes out as it is
        decided += 1
        who = winner(policy, event.updated if event else None, row["changedAt"])
        metrics.conflict(run.calendar_type, who)
        provider_version = json.dumps(event.raw if event and event.raw else {"id": row["ext"], "status":
                                      "cancelled"}, default=str)
        app_version = json.dumps(row["app_version"] or {"deleted": True, "op": row["op"]}, default=str)
        conn.execute(RECORD, {"c": run.calendar_id, "ext": row["ext"], "policy": policy, "winner": who,
                              "app": app_version if who == "provider" else None,
                              "provider": provider_version if who == "app" else None,
                              "outbox": row["outboxId"]})
        if who == "app":
            app_wins.add(row["ext"])
        else:
            conn.execute(SUPERSEDE, {"outbox": row["outboxId"]})
    return Resolved([e for e in live if e.ext_id not in app_wins], [d for d in deleted if d not in app_wins],
                    [e for e in cancelled if e.ext_id not in app_wins], decided)

"""`autosync status`: per-calendar provider, last sync, outcome, re-auth, events, cursor age, pending pushes.

It is also a check: a calendar is *failing* when it is active and its last run ended ``failed`` or
``blocked`` (the mass-delete guard), and *stale* when it is active, not waiting for its user to
re-link it, and its last sync is older than N of its intervals (the beat's interval, or the safety
poll for a watched calendar). A calendar waiting for re-auth is listed but fails no check: only its
user can fix it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from autosync.settings import get_settings
from autosync.store.pg import PgStore

# Status is read from PostgreSQL only (the app reads it there): the PostgreSQL store's own read.
_store = PgStore()

PROVIDERS = {1: "google", 2: "outlook"}
FAILING_OUTCOMES = ("failed", "blocked")


def status_rows(user_id: int | None = None, calendar_id: int | None = None, *,
                stale_after: float = 3.0) -> list[dict[str, Any]]:
    """One dict per linked calendar (of a user, or one calendar), with its failing and stale flags."""
    settings = get_settings()
    with _store.unit(origin_sync=False, timeout=5) as tx:
        rows = tx.status_rows(user_id, calendar_id)
    now = datetime.now(UTC)
    out = []
    for r in rows:
        cursor_age = (now - r["cursorUpdatedAt"]).total_seconds() if r["cursorUpdatedAt"] else None
        # "lastSyncDate" is UTC without a zone (the seed's column); a calendar never synced counts from
        # when it was linked.
        since = r["lastSyncDate"].replace(tzinfo=UTC) if r["lastSyncDate"] else r["createdAt"]
        sync_age = (now - since).total_seconds() if since else None
        period = settings.watch_safety_poll if r["watched_until"] else settings.sync_interval
        active = bool(r["active"])
        out.append({
            "calendarId": r["calendarId"], "userId": r["userId"], "provider": PROVIDERS[r["calendarType"]],
            "active": active, "lastSync": r["lastSyncDate"], "lastOutcome": r["lastOutcome"],
            "lastError": r["lastError"], "needsReauth": r["needsReauth"], "reauthReason": r["reauthReason"],
            "deactivatedReason": r["deactivatedReason"], "events": r["events"],
            "cursorAgeSeconds": round(cursor_age) if cursor_age is not None else None,
            "pendingPushes": r["pending_pushes"], "running": bool(r["running"]),
            "watchedUntil": r["watched_until"], "watchError": r["watchError"],
            "syncAgeSeconds": round(sync_age) if sync_age is not None else None,
            "failing": active and r["lastOutcome"] in FAILING_OUTCOMES,
            "stale": active and not r["needsReauth"] and sync_age is not None and sync_age > stale_after * period,
        })
    return out


def select(rows: list[dict[str, Any]], *, failing: bool = False, needs_reauth: bool = False) -> list[dict[str, Any]]:
    """The rows a filter keeps: --failing (failing or stale), --needs-reauth; both: either."""
    if not (failing or needs_reauth):
        return rows
    return [r for r in rows if (failing and (r["failing"] or r["stale"])) or (needs_reauth and r["needsReauth"])]


def problems(rows: list[dict[str, Any]]) -> int:
    """How many of these calendars fail the check (failing or stale)."""
    return sum(1 for r in rows if r["failing"] or r["stale"])


def render(rows: list[dict[str, Any]]) -> str:
    """A table, then a summary line."""
    head = ("CAL", "USER", "PROVIDER", "LAST SYNC (UTC)", "OUTCOME", "REAUTH", "EVENTS", "CURSOR AGE", "PUSHES",
            "WATCHED UNTIL", "ERROR")
    lines = []
    for r in rows:
        age = r["cursorAgeSeconds"]
        lines.append((str(r["calendarId"]), str(r["userId"]), r["provider"],
                      r["lastSync"].strftime("%Y-%m-%d %H:%M:%S") if r["lastSync"] else "never",
                      ("running" if r["running"] else (r["lastOutcome"] or "-"))
                      + ("" if r["active"] else " (inactive)") + (" (stale)" if r["stale"] else ""),
                      "yes" if r["needsReauth"] else "no", str(r["events"]),
                      f"{age}s" if age is not None else "-", str(r["pendingPushes"]),
                      r["watchedUntil"].strftime("%Y-%m-%d %H:%M") if r["watchedUntil"] else "-",
                      (r["reauthReason"] or r["deactivatedReason"] or r["lastError"] or r["watchError"] or "")[:60]))
    widths = [max(len(h), *(len(x[i]) for x in lines)) if lines else len(h) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    table = [fmt.format(*head)] + [fmt.format(*x) for x in lines]
    ok = sum(1 for r in rows if r["lastOutcome"] == "ok")
    failing = sum(1 for r in rows if r["failing"])
    reauth = sum(1 for r in rows if r["needsReauth"])
    watched = sum(1 for r in rows if r["watchedUntil"])
    stale = sum(1 for r in rows if r["stale"])
    table.append(f"{len(rows)} calendars: {ok} ok, {failing} failing, {reauth} need re-auth, {watched} watched, "
                 f"{sum(r['events'] for r in rows)} events, {sum(r['pendingPushes'] for r in rows)} pending pushes, "
                 f"{stale} stale")
    return "\n".join(table)

"""`autosync status`: per-calendar provider, last sync, outcome, re-auth, events, cursor age, pending pushes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from autosync.store.db import transaction
from autosync.store.status import STATUS

PROVIDERS = {1: "google", 2: "outlook"}


def status_rows(user_id: int | None) -> list[dict[str, Any]]:
    """One dict per linked calendar."""
    with transaction(origin_sync=False) as conn:
        rows = conn.execute(STATUS, {"user": user_id}).fetchall()
    now = datetime.now(UTC)
    out = []
    for r in rows:
        cursor_age = (now - r["cursorUpdatedAt"]).total_seconds() if r["cursorUpdatedAt"] else None
        out.append({
            "calendarId": r["calendarId"], "userId": r["userId"], "provider": PROVIDERS[r["calendarType"]],
            "active": r["active"], "lastSync": r["lastSyncDate"], "lastOutcome": r["lastOutcome"],
            "lastError": r["lastError"], "needsReauth": r["needsReauth"], "reauthReason": r["reauthReason"],
            "deactivatedReason": r["deactivatedReason"], "events": r["events"],
            "cursorAgeSeconds": round(cursor_age) if cursor_age is not None else None,
            "pendingPushes": r["pending_pushes"], "running": bool(r["running"]),
            "watchedUntil": r["watched_until"], "watchError": r["watchError"],
        })
    return out


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
                      + ("" if r["active"] else " (inactive)"),
                      "yes" if r["needsReauth"] else "no", str(r["events"]),
                      f"{age}s" if age is not None else "-", str(r["pendingPushes"]),
                      r["watchedUntil"].strftime("%Y-%m-%d %H:%M") if r["watchedUntil"] else "-",
                      (r["reauthReason"] or r["deactivatedReason"] or r["lastError"] or r["watchError"] or "")[:60]))
    widths = [max(len(h), *(len(x[i]) for x in lines)) if lines else len(h) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    table = [fmt.format(*head)] + [fmt.format(*x) for x in lines]
    ok = sum(1 for r in rows if r["lastOutcome"] == "ok")
    failing = sum(1 for r in rows if r["lastOutcome"] not in (None, "ok"))
    reauth = sum(1 for r in rows if r["needsReauth"])
    watched = sum(1 for r in rows if r["watchedUntil"])
    table.append(f"{len(rows)} calendars: {ok} ok, {failing} failing, {reauth} need re-auth, {watched} watched, "
                 f"{sum(r['events'] for r in rows)} events, {sum(r['pendingPushes'] for r in rows)} pending pushes")
    return "\n".join(table)

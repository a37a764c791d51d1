"""The shared checker: the app database against the emulator's state after a campaign settled.

- events lost: a live provider event with no row, or a row whose title/times differ from it
  (autosync.demo.check.convergence lists both);
- pushes lost: an app row never pushed (no extEventId), a synced row whose event is not live at the
  provider, or an outbox entry given up for a reason that is not the provider's;
- duplicated: two rows for one provider event, or two provider events for one app row. A second
  provider event for one row comes back as a second row of the same title and times, so both show
  as groups of live rows with the same (calendar, title, start, end) that were not there before the
  campaign (``baseline``).
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any

import psycopg

from bench.faults.system import System

DUPLICATE_GROUPS = """
SELECT "calendarId", "eventName", "startDate", "startTime", "endDate", "endTime", count(*) AS n
FROM cal_event WHERE status GROUP BY 1, 2, 3, 4, 5, 6 HAVING count(*) > 1
"""
SAME_EXT = """
SELECT count(*) AS n FROM (SELECT 1 FROM cal_event WHERE "extEventId" IS NOT NULL
                           GROUP BY "calendarId", "extEventId" HAVING count(*) > 1) d
"""
# Given up for our own reasons: an internal error, or a text naming our database or broker.
GIVEN_UP = """
SELECT count(*) AS n FROM event_outbox WHERE outcome = 'failed'
  AND ("lastError" ILIKE 'internal error%%' OR "lastError" ~* '(psycopg|redis|connection refused|server closed|valkey)')
"""


def duplicate_groups(system: System) -> set[tuple[Any, ...]]:
    """Groups of live rows of one calendar with the same title and times."""
    with system.connect() as conn:
        return {tuple(r[k] for k in ("calendarId", "eventName", "startDate", "startTime", "endDate", "endTime"))
                for r in conn.execute(DUPLICATE_GROUPS).fetchall()}


def check(system: System, baseline: set[tuple[Any, ...]]) -> dict[str, Any]:
    """Counts after the campaign: lost, duplicated and their parts, with the first mismatch lines."""
    converged, lines = system.demo.convergence()
    events_lost = [ln for ln in lines if "is at the provider, not in the database" in ln or "differs" in ln]
    pushes = [ln for ln in lines if "not pushed yet" in ln or "not live at the provider" in ln]
    other = [ln for ln in lines if ln not in events_lost and ln not in pushes]
    with system.connect() as conn:
        same_ext = int(conn.execute(SAME_EXT).fetchone()["n"])  # type: ignore[index]
        given_up = int(conn.execute(GIVEN_UP).fetchone()["n"])  # type: ignore[index]
        runs = conn.execute("SELECT outcome, count(*) AS n FROM sync_run GROUP BY outcome").fetchall()
        # for diagnosis: the last runs of every calendar with a mismatch
        labels = {ln.split(":")[0] for ln in lines}
        recent: dict[str, Any] = {}
        for label in sorted(labels)[:5]:
            email, _, kind = label.partition(" ")
            recent[label] = conn.execute(
                'SELECT r."runId", r.reason, r.outcome, r.step, r."fullSync", r."startedAt", r."finishedAt", '
                'r.error, r."eventsUpserted", r."pushCreated" + r."pushUpdated" AS pushed FROM sync_run r '
                'JOIN calendar c USING ("calendarId") JOIN user_main u ON u."userId" = c."userId" '
                'WHERE u.email = %s AND c."calendarType" = %s ORDER BY r."runId" DESC LIMIT 8',
                (email, 1 if kind == "google" else 2)).fetchall()
    new_groups = duplicate_groups(system) - baseline
    return {
        "lost": len(events_lost) + len(pushes) + len(other) + given_up,
        "duplicated": len(new_groups) + same_ext,
        "events_lost": len(events_lost),
        "pushes_lost": len(pushes) + given_up,
        "pushes_given_up_for_our_failure": given_up,
        "duplicate_rows_per_provider_event": same_ext,
        "duplicate_title_time_groups": len(new_groups),
        "converged": converged,
        "runs_by_outcome": {r["outcome"] or "open": int(r["n"]) for r in runs},
        "mismatches": lines[:200],
        "recent_runs_of_mismatched_calendars": recent,
    }


def issued_secrets(system: System) -> list[str]:
    """Every token the emulator issued (access and refresh), its OAuth client secrets and channel secrets."""
    emu = system.emulator
    found = set(emu.oauth.access) | set(emu.oauth.refresh)
    found |= {secret for _, secret in emu.clients.values()}
    with contextlib.suppress(Exception):
        found |= set(_channel_secrets(emu))
    return sorted(s for s in found if s and len(s) >= 8)


def _channel_secrets(emu: Any) -> list[str]:
    out = []
    state = emu.push.state() if hasattr(emu.push, "state") else {}
    for item in (state.get("channels") or []) + (state.get("subscriptions") or []):
        for key in ("token", "clientState"):
            if item.get(key):
                out.append(str(item[key]))
    return out


def secret_hits(system: System) -> dict[str, Any]:
    """Occurrences of any issued secret in every log file and every table (token columns hold sealed
    values, which must not contain the plaintext either)."""
    secrets = issued_secrets(system)
    pattern = re.compile("|".join(re.escape(s) for s in secrets)) if secrets else None
    hits: dict[str, int] = {}
    lines_searched = 0
    files = [*system.logs.glob("*.log"), *system.services.root.glob("*.log")]
    for path in files:
        text = path.read_text(errors="replace")
        lines_searched += text.count("\n")
        n = len(pattern.findall(text)) if pattern else 0
        if n:
            hits[f"log:{path.name}"] = n
    tables_searched = 0
    with system.connect() as conn:
        tables = [r["tablename"] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()]
        for table in tables:
            tables_searched += 1
            with conn.cursor() as cur, cur.copy(psycopg.sql.SQL("COPY {} TO STDOUT").format(
                    psycopg.sql.Identifier(table))) as copy:
                text = b"".join(bytes(chunk) for chunk in copy).decode(errors="replace")
            n = len(pattern.findall(text)) if pattern else 0
            if n:
                hits[f"table:{table}"] = n
    return {"secrets_issued": len(secrets), "log_files": len(files), "log_lines": lines_searched,
            "tables": tables_searched, "hits": sum(hits.values()), "where": hits}


def log_count(system: System, needle: str) -> int:
    """Lines of the worker's and beat's logs containing ``needle``."""
    total = 0
    for path in system.logs.glob("*.log"):
        total += sum(1 for line in Path(path).read_text(errors="replace").splitlines() if needle in line)
    return total

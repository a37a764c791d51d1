"""SQL for the scrape-time metrics: calendar health, sync lag, watched calendars, outbox, channels, runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from autosync.store.db import Conn

# Calendars covered by a live, unexpired channel: a Google channel names its calendar; a Graph
# subscription (calendarId NULL) covers every calendar of its mailbox. Two hash-joinable halves
# instead of push_sql.COVERS's OR, which would probe push_channel once per calendar.
WATCHED = (
    'SELECT p."calendarId" AS id FROM push_channel p WHERE p."stoppedAt" IS NULL AND p."expiresAt" > now() '
    'AND p."calendarId" IS NOT NULL '
    'UNION SELECT c."calendarId" FROM push_channel p JOIN calendar c ON c."calendarType" = p."calendarType" '
    'AND c."userId" = p."userId" AND c."socialAccountId" = p."socialAccountId" '
    'WHERE p."stoppedAt" IS NULL AND p."expiresAt" > now() AND p."calendarId" IS NULL'
)
# One pass over the linked calendars, grouped into a few hundred rows at most: state, watched, watch
# error, lag bucket (width_bucket over the histogram bounds), with lag sum/max and the stale count.
# State precedence: inactive > needs_reauth > blocked > failing > never_synced > ok. The lag of a
# calendar never synced counts from when it was linked. A calendar is stale when its last successful
# sync is older than %(stale)s seconds, or %(stale_watched)s when a channel watches it (a watched
# calendar is only polled every AUTOSYNC_WATCH_SAFETY_POLL; notifications start its other runs).
CALENDARS = (
    "WITH watched AS (" + WATCHED + "), cal AS ("
    'SELECT c."calendarType" AS kind, '
    "CASE WHEN NOT c.status THEN 'inactive' WHEN c.\"needsReauth\" THEN 'needs_reauth' "
    "WHEN c.\"lastOutcome\" = 'blocked' THEN 'blocked' WHEN c.\"lastOutcome\" = 'failed' THEN 'failing' "
    "WHEN c.\"lastSyncDate\" IS NULL THEN 'never_synced' ELSE 'ok' END AS state, "
    "w.id IS NOT NULL AS watched, c.\"watchError\" IS NOT NULL AS watch_error, "
    'extract(epoch FROM now() - coalesce(c."lastSyncDate" AT TIME ZONE \'UTC\', c."createdAt"))::float8 AS lag '
    'FROM calendar c LEFT JOIN watched w ON w.id = c."calendarId" WHERE c."calendarType" IN (1, 2)) '
    "SELECT kind, state, watched, watch_error, width_bucket(lag, %(bounds)s::float8[]) AS bucket, "
    "count(*) AS n, sum(lag) AS lag_sum, max(lag) AS lag_max, "
    "count(*) FILTER (WHERE lag > CASE WHEN watched THEN %(stale_watched)s ELSE %(stale)s END) AS stale "
    "FROM cal GROUP BY 1, 2, 3, 4, 5"
)
# App changes waiting to be pushed, on calendars that can push (active, not waiting for re-auth:
# those are counted by their calendar state). Reads event_outbox_calendar_idx (pending rows only).
OUTBOX = (
    'SELECT c."calendarType" AS kind, count(*) AS pending, '
    'extract(epoch FROM now() - min(o."changedAt"))::float8 AS oldest '
    'FROM event_outbox o JOIN calendar c ON c."calendarId" = o."calendarId" '
    'WHERE o."doneAt" IS NULL AND c.status AND NOT c."needsReauth" GROUP BY 1'
)
# Channels not stopped: live ones, and expired ones (nobody renewed or replaced them: lost).
CHANNELS = (
    'SELECT "calendarType" AS kind, count(*) FILTER (WHERE "expiresAt" > now()) AS live, '
    'count(*) FILTER (WHERE "expiresAt" <= now()) AS expired '
    'FROM push_channel WHERE "stoppedAt" IS NULL GROUP BY 1'
)
# Runs in progress (the partial unique index sync_run_one_active holds exactly these).
RUNS_OPEN = (
    'SELECT c."calendarType" AS kind, count(*) AS open FROM sync_run r '
    'JOIN calendar c ON c."calendarId" = r."calendarId" WHERE r."finishedAt" IS NULL GROUP BY 1'
)


def calendars(conn: Conn, bounds: Sequence[float], stale: float, stale_watched: float) -> list[dict[str, Any]]:
    """Calendar counts by provider kind, state, watched, watch error and lag bucket."""
    return conn.execute(CALENDARS, {"bounds": list(bounds), "stale": stale,
                                    "stale_watched": stale_watched}).fetchall()


def outbox(conn: Conn) -> list[dict[str, Any]]:
    """Pending pushes and the age of the oldest, by provider kind."""
    return conn.execute(OUTBOX).fetchall()


def channels(conn: Conn) -> list[dict[str, Any]]:
    """Live and expired (lost) channels by provider kind."""
    return conn.execute(CHANNELS).fetchall()


def runs_open(conn: Conn) -> list[dict[str, Any]]:
    """Runs in progress by provider kind."""
    return conn.execute(RUNS_OPEN).fetchall()

"""SQL for the scrape-time metrics: calendar health, sync lag, watched calendars, outbox, channels, runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from autosync.store.db import Conn

# One pass over the linked calendars, grouped into a few hundred rows at most by the raw state columns,
# watched, watch error and lag bucket (width_bucket over the histogram bounds), with lag sum/max and
# the stale count; the state is named in Python. "lastSyncDate" holds UTC without a zone, so its
# nominal epoch is the real one; the lag of a calendar never synced counts from when it was linked.
# A calendar is stale when its last successful sync is older than %(stale)s seconds, or
# %(stale_watched)s when a channel watches it (a watched calendar is only polled every
# AUTOSYNC_WATCH_SAFETY_POLL; notifications start its other runs).
# Watched: covered by a live, unexpired channel. A Google channel names its calendar; a Graph
# subscription (calendarId NULL) covers every calendar of its mailbox. Two hash joins on the one scan
# instead of channels.COVERS's OR, which would probe push_channel once per calendar.
LIVE = 'p."stoppedAt" IS NULL AND p."expiresAt" > now()'
CALENDARS = (
    'SELECT c."calendarType" AS kind, c.status AS active, c."needsReauth" AS reauth, c."lastOutcome" AS outcome, '
    'c."lastSyncDate" IS NULL AS never, (g.id IS NOT NULL OR m.kind IS NOT NULL) AS watched, '
    'c."watchError" IS NOT NULL AS watch_error, width_bucket(l.lag, %(bounds)s::float8[]) AS bucket, '
    "count(*) AS n, sum(l.lag) AS lag_sum, max(l.lag) AS lag_max, "
    "count(*) FILTER (WHERE l.lag > CASE WHEN g.id IS NOT NULL OR m.kind IS NOT NULL THEN %(stale_watched)s "
    "ELSE %(stale)s END) AS stale "
    "FROM calendar c CROSS JOIN LATERAL (SELECT %(now)s::float8 - coalesce(date_part('epoch', c.\"lastSyncDate\"), "
    "date_part('epoch', c.\"createdAt\")) AS lag) l "
    'LEFT JOIN (SELECT DISTINCT p."calendarId" AS id FROM push_channel p WHERE ' + LIVE + ' '
    'AND p."calendarId" IS NOT NULL) g ON g.id = c."calendarId" '
    'LEFT JOIN (SELECT DISTINCT p."calendarType" AS kind, p."userId" AS uid, p."socialAccountId" AS account '
    'FROM push_channel p WHERE ' + LIVE + ' AND p."calendarId" IS NULL) m '
    'ON m.kind = c."calendarType" AND m.uid = c."userId" AND m.account = c."socialAccountId" '
    'WHERE c."calendarType" IN (1, 2) GROUP BY 1, 2, 3, 4, 5, 6, 7, 8'
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


def calendars(conn: Conn, bounds: Sequence[float], stale: float, stale_watched: float,
              now: float) -> list[dict[str, Any]]:
    """Calendar counts by provider kind, state columns, watched, watch error and lag bucket (``now``: unix time)."""
    return conn.execute(CALENDARS, {"bounds": list(bounds), "stale": stale, "stale_watched": stale_watched,
                                    "now": now}).fetchall()


def outbox(conn: Conn) -> list[dict[str, Any]]:
    """Pending pushes and the age of the oldest, by provider kind."""
    return conn.execute(OUTBOX).fetchall()


def channels(conn: Conn) -> list[dict[str, Any]]:
    """Live and expired (lost) channels by provider kind."""
    return conn.execute(CHANNELS).fetchall()


def runs_open(conn: Conn) -> list[dict[str, Any]]:
    """Runs in progress by provider kind."""
    return conn.execute(RUNS_OPEN).fetchall()

"""SQL for sync-back: pending app changes, the event rows and share attendees they push, the push log."""

from __future__ import annotations

import json
from typing import Any

from psycopg import sql as psql

from autosync.store.db import Conn

BATCH = 500  # outbox entries one run pushes at most
PENDING = (
    'SELECT o.* FROM event_outbox o WHERE o."calendarId" = %(c)s AND o."doneAt" IS NULL '
    'AND o."nextAttemptAt" <= now() ORDER BY o."outboxId" LIMIT %(limit)s'
)
EVENT_ROW = 'SELECT * FROM cal_event WHERE "eventId" = %(e)s'
# Registered users (status true, not declined, never the creator) and non-registered e-mails.
SHARE_ATTENDEES = (
    'SELECT u.email, trim(coalesce(u."firstName", \'\') || \' \' || coalesce(u."lastName", \'\')) AS name, '
    's."sharedStatus" AS shared_status FROM cal_event_share s JOIN user_main u ON u."userId" = s."sharedUser" '
    'JOIN cal_event e ON e."eventId" = s."eventId" WHERE s."eventId" = %(e)s AND s.status '
    'AND s."sharedStatus" <> 2 AND s."sharedUser" IS DISTINCT FROM e."createdBy" AND u.email IS NOT NULL '
    "UNION ALL SELECT n.email, '' AS name, n.\"sharedStatus\" AS shared_status FROM non_reg_user_share n "
    'WHERE n."activityType" = 2 AND n."activityId" = %(e)s'
)
# Done only if the app did not change the event again while its push was in flight (the trigger moved
# "changedAt"): otherwise the entry stays pending and the next run pushes the newer version.
DONE = (
    'UPDATE event_outbox SET "doneAt" = CASE WHEN "changedAt" = %(changed)s THEN now() END, '
    'outcome = CASE WHEN "changedAt" = %(changed)s THEN %(outcome)s END, attempts = attempts + 1, '
    '"lastError" = %(error)s WHERE "outboxId" = %(o)s'
)
RETRY_LATER = (
    'UPDATE event_outbox SET attempts = attempts + 1, "lastError" = %(error)s, '
    '"nextAttemptAt" = now() + make_interval(secs => %(delay)s) WHERE "outboxId" = %(o)s'
)
# What the provider now has, written as autosync's own (origin 'sync': no echo).
# The attendees the provider now has (app's + provider-only, merged) become the row's: share
# withdrawals are tracked in event_outbox."removedAttendees", so nothing stale can come back from here.
STORE_PUSHED = (
    'UPDATE cal_event SET "extEventId" = %(ext)s, "extEtag" = %(etag)s, "providerData" = %(raw)s::jsonb, '
    'attendees = %(attendees)s::jsonb, '
    '"contentHash" = %(hash)s, "extUpdatedAt" = %(updated)s, "htmlLink" = coalesce(%(html)s, "htmlLink"), '
    '"syncedAt" = now() WHERE "eventId" = %(e)s'
)
LOG = 'INSERT INTO temp_log ("userId", data) VALUES (%(u)s, %(data)s::jsonb)'
# The provider deleted the event after a create of ours made it, and that deletion won: the row goes
# the way an imported deletion goes (autosync's own write: no outbox entry), unless the app changed
# it again meanwhile (that newer edit is pushed by the next run).
MARK_DELETED = (
    "UPDATE cal_event SET status = false, \"eventStatus\" = 'cancelled', \"syncedAt\" = now() "
    'WHERE "eventId" = %(e)s AND EXISTS (SELECT 1 FROM event_outbox WHERE "outboxId" = %(o)s '
    'AND "changedAt" = %(changed)s)'
)
# A create whose answer was lost took effect, and a run's import listed the new event as a row of its
# own before the retry learnt its id. That row is autosync's copy of the app's own event: it goes
# (with any push queued for it, which would otherwise delete the event), and the app's row takes the id.
ADOPT = (
    'WITH dup AS (DELETE FROM cal_event WHERE "calendarId" = %(c)s AND "extEventId" = %(ext)s '
    'AND "eventId" <> %(e)s RETURNING "eventId") '
    'UPDATE event_outbox SET "doneAt" = now(), outcome = \'merged into the app row that created it\' '
    'WHERE "eventId" IN (SELECT "eventId" FROM dup) AND "doneAt" IS NULL'
)
# Start zones Graph named on the calendar's recently synced events, most used first.
OWNER_ZONES = (
    'SELECT z FROM (SELECT "providerData"->>\'originalStartTimeZone\' AS z FROM cal_event '
    'WHERE "calendarId" = %(c)s AND "providerData" IS NOT NULL ORDER BY "syncedAt" DESC NULLS LAST '
    "LIMIT 500) AS recent WHERE z IS NOT NULL GROUP BY z ORDER BY count(*) DESC, z LIMIT 20"
)
# Synced live events the pending deletes leave alone; hard-deleted rows are gone from cal_event, so the
# guard adds the deletes themselves to get the total synced before them.
COUNT_DELETES = (
    'WITH d AS (SELECT "eventId" FROM event_outbox WHERE "calendarId" = %(c)s AND "doneAt" IS NULL '
    'AND "nextAttemptAt" <= now() AND op = \'delete\' AND "extEventId" IS NOT NULL) '
    'SELECT (SELECT count(*) FROM d) AS deletes, (SELECT count(*) FROM cal_event e WHERE e."calendarId" = %(c)s '
    'AND e."extEventId" IS NOT NULL AND e.status AND e."eventId" NOT IN (SELECT "eventId" FROM d)) AS kept'
)


def pending(conn: Conn, calendar_id: int, limit: int = BATCH) -> list[dict[str, Any]]:
    """App changes due for a push, oldest first."""
    return conn.execute(PENDING, {"c": calendar_id, "limit": limit}).fetchall()


def count_deletes(conn: Conn, calendar_id: int) -> dict[str, int]:
    """Due app deletes of synced events (``deletes``) and the synced live events they leave (``kept``)."""
    row = conn.execute(COUNT_DELETES, {"c": calendar_id}).fetchone()
    return {"deletes": int(row["deletes"]), "kept": int(row["kept"])} if row else {"deletes": 0, "kept": 0}


def event_row(conn: Conn, event_id: int) -> dict[str, Any] | None:
    """The cal_event row (None when the app deleted it)."""
    return conn.execute(EVENT_ROW, {"e": event_id}).fetchone()


def share_attendees(conn: Conn, event_id: int) -> list[dict[str, Any]]:
    """Attendees from cal_event_share and non_reg_user_share, as the seed selects them."""
    return conn.execute(SHARE_ATTENDEES, {"e": event_id}).fetchall()


def store_columns(conn: Conn, event_id: int, columns: dict[str, Any], outbox_id: int, changed_at: Any) -> None:
    """Write provider-side values into cal_event columns (autosync's own write: no outbox entry).

    Skipped when the app changed the event again since the push read it: its newer edit must stay.
    """
    assignments = psql.SQL(", ").join(psql.SQL("{} = %s").format(psql.Identifier(c)) for c in columns)
    stmt = psql.SQL('UPDATE cal_event SET {} WHERE "eventId" = %s AND EXISTS (SELECT 1 FROM event_outbox '
                    'WHERE "outboxId" = %s AND "changedAt" = %s)').format(assignments)
    conn.execute(stmt, [*columns.values(), event_id, outbox_id, changed_at])


def log_push(conn: Conn, user_id: int, data: dict[str, Any]) -> None:
    """One temp_log row per push, as the seed wrote them, with the outcome."""
    conn.execute(LOG, {"u": user_id, "data": json.dumps(data, default=str)})


def zones_in_use(conn: Conn, calendar_id: int) -> list[str]:
    """Start zone names on the calendar's recently synced provider copies, most used first."""
    return [r["z"] for r in conn.execute(OWNER_ZONES, {"c": calendar_id}).fetchall()]

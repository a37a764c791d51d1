"""SQL for `autosync status`."""

from __future__ import annotations

from autosync.store.channels import COVERS

# One row per linked calendar: provider, last sync, outcome, re-auth, events, cursor, pushes, watching.
STATUS = (
    'SELECT c."calendarId", c."userId", c."calendarType", c.status AS active, c."lastSyncDate", '
    'c."lastOutcome", c."lastError", c."needsReauth", c."reauthReason", c."deactivatedReason", '
    'c."cursorUpdatedAt", c."deltaLink" IS NOT NULL AS has_cursor, '
    '(SELECT count(*) FROM cal_event e WHERE e."calendarId" = c."calendarId" AND e.status) AS events, '
    '(SELECT count(*) FROM event_outbox o WHERE o."calendarId" = c."calendarId" AND o."doneAt" IS NULL) '
    "AS pending_pushes, "
    '(SELECT count(*) FROM sync_run r WHERE r."calendarId" = c."calendarId" AND r."finishedAt" IS NULL) '
    "AS running, "
    '(SELECT max(p."expiresAt") FROM push_channel p WHERE p."stoppedAt" IS NULL AND ' + COVERS + ') AS watched_until, '
    'c."watchError", c."createdAt" FROM calendar c WHERE c."calendarType" IN (1, 2) '
    'AND (%(user)s::bigint IS NULL OR c."userId" = %(user)s) '
    'AND (%(calendar)s::bigint IS NULL OR c."calendarId" = %(calendar)s) ORDER BY c."userId", c."calendarId"'
)

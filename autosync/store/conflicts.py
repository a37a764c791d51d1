"""SQL for conflicts: the app's pending changes against a page, the recorded loser, superseded pushes."""

from __future__ import annotations

# The app's pending outbox entries for events a provider page also changed.
PENDING = (
    'SELECT o."outboxId", o.op, o."changedAt", coalesce(e."extEventId", o."extEventId") AS ext, '
    'e."contentHash" AS hash, '
    "to_jsonb(e) - 'providerData' AS app_version "
    'FROM event_outbox o LEFT JOIN cal_event e ON e."eventId" = o."eventId" '
    'WHERE o."calendarId" = %(c)s AND o."doneAt" IS NULL '
    'AND coalesce(e."extEventId", o."extEventId") = ANY(%(ids)s)'
)
# Both versions, where an operator finds them.
RECORD = (
    'INSERT INTO sync_conflict ("calendarId", "eventId", "extEventId", policy, winner, "appVersion", '
    '"providerVersion") SELECT %(c)s, o."eventId", %(ext)s, %(policy)s, %(winner)s, %(app)s::jsonb, '
    '%(provider)s::jsonb FROM event_outbox o WHERE o."outboxId" = %(outbox)s'
)
# The provider's change won: the app's pending push is dropped, with why.
SUPERSEDE = (
    'UPDATE event_outbox SET "doneAt" = now(), outcome = \'superseded by provider change\' '
    'WHERE "outboxId" = %(outbox)s'
)

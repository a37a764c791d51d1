"""SQL for conflicts: the app's pending changes against a page, the recorded loser, superseded pushes."""

from __future__ import annotations

# Whether the calendar has any app change waiting at all: almost always not during an import, and
# then the page's ids (2,500 of them on a large Google page) need not be sent to be matched. Asked
# first only for pages of CHECK_FIRST_FROM ids or more: for a small page, sending its ids costs less
# than the extra round trip.
CHECK_FIRST_FROM = 200
ANY_PENDING = ('SELECT EXISTS (SELECT 1 FROM event_outbox WHERE "calendarId" = %(c)s AND "doneAt" IS NULL) '
               "AS pending")
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

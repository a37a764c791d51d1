"""SQL for the user-notification outbox: claim pending ones, mark them delivered or failed."""

from __future__ import annotations

CLAIM = (
    'SELECT "notificationId", "userId", kind, payload, "createdAt" FROM notification '
    'WHERE "deliveredAt" IS NULL ORDER BY "notificationId" LIMIT %(limit)s FOR UPDATE SKIP LOCKED'
)
DELIVERED = (
    'UPDATE notification SET "deliveredAt" = now(), attempts = attempts + 1 WHERE "notificationId" = ANY(%(ids)s)'
)
FAILED = 'UPDATE notification SET attempts = attempts + 1 WHERE "notificationId" = ANY(%(ids)s)'

"""Client-chosen keys for creates: stable per (calendar, app event[, the copy it replaces])."""

from __future__ import annotations

import base64
import hashlib
import uuid


def _seed(calendar_id: int, event_id: int, replacing: str | None) -> str:
    return f"miplanit:{calendar_id}:{event_id}" + (f":{replacing}" if replacing else "")


def google_event_id(calendar_id: int, event_id: int, replacing: str | None = None) -> str:
    """A client-chosen Google id (base32hex, stable per event), so a retried insert never duplicates.

    ``replacing`` is the id of the event's earlier copy, gone at Google: the re-creation's id derives
    from (calendar, event, that id), so every retry of the re-creation asks for the same id (Google
    answers 409 to the second) and a later re-creation, after that copy is gone too, gets a new one.
    Google's rule for client ids (base32hex characters, 5-1024 long):
    https://developers.google.com/workspace/calendar/api/v3/reference/events/insert (``id``).
    """
    digest = hashlib.blake2b(_seed(calendar_id, event_id, replacing).encode(), digest_size=10).digest()
    return "mp" + base64.b32hexencode(digest).decode().lower().rstrip("=")


def transaction_id(calendar_id: int, event_id: int, replacing: str | None = None) -> str:
    """A stable Graph transactionId for the same purpose (Graph returns the item an earlier POST with
    the same transactionId created, instead of a second one:
    https://learn.microsoft.com/graph/api/resources/event, ``transactionId``)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, _seed(calendar_id, event_id, replacing)))

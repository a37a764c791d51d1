"""Provider rules a push must respect: client-chosen ids and keys, Google event types, zones to write in."""

from __future__ import annotations

from typing import Any

from autosync.normalize.google import FROM_GMAIL_WRITABLE, SYNCED_EVENT_TYPES
from autosync.normalize.timezones import iana_name
from autosync.providers.keys import google_event_id, transaction_id

__all__ = ["google_event_id", "transaction_id"]  # re-exported: the keys live with the providers


def google_type(row: dict[str, Any]) -> str:
    """The Google event type of a synced row: the provider copy's (the app cannot change it), else the row's."""
    raw = row.get("providerData") or {}
    return str(raw.get("eventType") or row.get("eventType") or "default")


def unsynced_type(row: dict[str, Any]) -> str | None:
    """Why a Google row must not be pushed at all: its type is one MiPlanIt does not sync (None: it may be).

    Such rows only exist when imported before the eventTypes filter (the event-types migration removes
    them) or written by the app with that type; pushing them would touch events the user manages elsewhere.
    """
    kind = google_type(row)
    if kind in SYNCED_EVENT_TYPES:
        return None
    return f"Google {kind} events are not synced by MiPlanIt; the change was not pushed"


def from_gmail_split(kind: str, changed: set[str]) -> tuple[set[str], set[str]]:
    """(fields Google accepts, fields it refuses) of an app change to an event of type ``kind``."""
    if kind != "fromGmail":
        return changed, set()
    return changed & FROM_GMAIL_WRITABLE, changed - FROM_GMAIL_WRITABLE


def refusal_text(kind: str, refused: set[str]) -> str:
    """The error recorded when Google would refuse part of a change: what was kept from the provider."""
    return (f"Google accepts only reminder changes and deletion on a {kind} event; the app's change to "
            f"{', '.join(sorted(refused))} was not pushed and the provider's value was kept")


class ProviderDeleted(Exception):
    """The event a create asked for already exists at the provider, deleted there after our first
    attempt created it, and the conflict policy lets that deletion stand."""

    def __init__(self, raw: dict[str, Any], policy: str) -> None:
        super().__init__(f"deleted at the provider after it was created ({raw.get('id')})")
        self.raw = raw
        self.policy = policy


def unnamed_zone(old_raw: dict[str, Any]) -> bool:
    """True when an Outlook copy has no start zone autosync can name.

    Graph names the zone in ``originalStartTimeZone`` (Windows names); a legacy custom zone reads
    ``tzone://Microsoft/Custom`` and some items carry none. The start/end themselves come in UTC (we ask
    ``Prefer: outlook.timezone="UTC"``), so the import can only label such an event UTC — a label the
    user never chose, which a push must not write back.
    """
    return bool(old_raw) and iana_name(str(old_raw.get("originalStartTimeZone") or "")) is None


def owner_zone(candidates: list[str | None]) -> str | None:
    """The first nameable zone among the calendar's zones, most used first: the owner's zone.

    With Calendars.ReadWrite autosync cannot read the mailbox's own zone setting (that needs
    MailboxSettings.Read), but the events the owner creates carry it as ``originalStartTimeZone``.
    """
    for name in candidates:
        iana = iana_name(name)
        if iana is not None and iana != "UTC":
            return iana
    return None

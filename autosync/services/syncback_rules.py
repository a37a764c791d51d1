"""Provider rules a push must respect: client-chosen ids and keys, Google event types, zones to write in."""

from __future__ import annotations

from typing import Any

from autosync.normalize.google_write import from_gmail_split, google_type, unsynced_type
from autosync.normalize.outlook_write import unnamed_zone
from autosync.normalize.timezones import iana_name
from autosync.providers.keys import google_event_id, transaction_id

# Re-exported: the keys live with the providers, the type rules with Google's write format.
__all__ = ["from_gmail_split", "google_event_id", "google_type", "transaction_id", "unnamed_zone", "unsynced_type"]


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

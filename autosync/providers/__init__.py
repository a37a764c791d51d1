"""Provider adapters: one small interface for Google and Outlook (URLs, paging, status mapping)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from autosync.model import Event, Skipped


@dataclass(frozen=True)
class TokenGrant:
    """A refreshed access token; ``refresh_token`` is None when the provider kept the old one."""

    access_token: str = field(repr=False)
    expires_at: datetime
    refresh_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class CalendarRef:
    """What an adapter needs to address one calendar: ids, the mailbox/account and the token."""

    calendar_id: int
    ext_calendar_id: str | None
    account: str
    access_token: str = field(repr=False)


@dataclass(frozen=True)
class Page:
    """One page of changes.

    ``next_page`` continues this round (Google pageToken, Graph nextLink); ``sync_cursor`` is the
    cursor for the next round and is only present on the last page (``complete``).
    """

    items: list[dict[str, Any]]
    next_page: str | None
    sync_cursor: str | None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """True on the last page of a round."""
        return self.next_page is None


@dataclass(frozen=True)
class Channel:
    """A change-notification channel: a Google watch channel or a Graph subscription."""

    id: str
    expires_at: datetime
    resource_id: str | None = None  # Google's, needed to stop the channel


@dataclass(frozen=True)
class WatchRequest:
    """What autosync asks a provider to watch with: where to notify and the secret to echo."""

    channel_id: str  # ours for Google; Graph assigns its own
    address: str
    lifecycle_address: str | None
    secret: str = field(repr=False)
    expires_at: datetime


class Adapter(Protocol):
    """The operations the sync engine needs from a calendar provider (one adapter per provider)."""

    kind: int
    name: str
    # What the provider's sync model asks of the services (instead of asking which provider it is):
    window_in_cursor: bool  # the cursor freezes the listed window: rolling it forward needs a full listing
    checks_series: bool  # its change feed can miss series changes: the import checks series (instances)
    ids_are_keys: bool  # the create key is the event's id: an unanswered create can be addressed by it
    keeps_deleted: bool  # deleted events stay readable: a create's key may find a copy deleted since
    watch_scope: str  # "calendar": one channel per calendar; "mailbox": one per account
    watch_path: str  # the receiver's route for its notifications
    lifecycle_path: str | None  # the receiver's route for its channel lifecycle events, if any
    max_watch_ttl: int | None  # the longest channel lifetime it grants, in seconds (None: none documented)

    @property
    def page_size(self) -> int:
        """Items one listing page holds at most."""

    def zone_hint(self, row: dict[str, Any]) -> str | None:
        """The zone to read the provider copy of an app row with, where the copy may leave it unnamed."""

    def writable(self, row: dict[str, Any], changed: set[str]) -> tuple[set[str], set[str]]:
        """(fields the provider accepts, fields it refuses) of an app change to this row."""

    def zone_unnamed(self, old_raw: dict[str, Any]) -> bool:
        """True when the provider copy carries no start zone autosync can name."""

    def refusal(self, row: dict[str, Any]) -> str | None:
        """Why an app row must not be written to this provider at all (None: it may be)."""

    def refresh(self, refresh_token: str) -> TokenGrant:
        """Exchange a refresh token for a new access token."""

    # The provider's formats, so services never branch on which provider it is.

    def read_page(self, items: list[dict[str, Any]], meta: dict[str, Any]
                  ) -> tuple[list[Event], list[Skipped], list[str]]:
        """A page's items as events, the items that could not be read, and ids the page marks removed."""

    def read_event(self, raw: dict[str, Any], zone_hint: str | None = None) -> Event:
        """One provider item as the import reads it (``zone_hint``: the zone an unnamed one means)."""

    def create_body(self, event: Event) -> dict[str, Any]:
        """The body that creates the event."""

    def patch_body(self, old_raw: dict[str, Any], event: Event, changed: set[str], base: Event | None
                   ) -> dict[str, Any]:
        """The body that changes only the ``changed`` fields of the provider copy ``old_raw``."""

    def create_key(self, calendar_id: int, event_id: int, replacing: str | None = None) -> str:
        """The idempotency key of an app event's create, derived from (calendar, event[, the gone copy])."""

    def list_changes(self, cal: CalendarRef, *, cursor: str | None, page: str | None,
                     window: tuple[datetime, datetime]) -> Page:
        """One page of changes since ``cursor`` (None: a full listing over ``window``)."""

    def get(self, cal: CalendarRef, ext_id: str) -> dict[str, Any] | None:
        """One event, or None when it is gone."""

    def create(self, cal: CalendarRef, body: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
        """Create an event; retries with the same key never duplicate it."""

    def update(self, cal: CalendarRef, ext_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Patch an event with the given fields."""

    def delete(self, cal: CalendarRef, ext_id: str) -> None:
        """Delete an event; an event already gone counts as success."""

    def watch(self, cal: CalendarRef, request: WatchRequest) -> Channel:
        """Start change notifications for the calendar (Google) or its whole mailbox (Graph)."""

    def renew_watch(self, cal: CalendarRef, channel_id: str, expires_at: datetime) -> Channel | None:
        """Extend a channel in place; None when the provider has no renewal (Google: create anew)."""

    def unwatch(self, cal: CalendarRef, channel_id: str, resource_id: str | None) -> None:
        """Stop a channel; one already gone counts as success."""

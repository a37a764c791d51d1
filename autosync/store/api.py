"""The store seam: what run steps ask of storage, as one narrow protocol.

`store.pg.PgStore` is PostgreSQL (every statement and parameter name lives in the store); and
`store.memory.MemoryStore` keeps the same data in memory and records what happened, for fast tests
of the services. Services get the store from the application context (``app.store``) and work in
units: ``with app.store.unit() as tx: ...`` commits everything done through ``tx`` together.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import date, datetime
from typing import Any, Protocol

from autosync.model import AppChange, Event, Skipped
from autosync.store.events import Encoded, Upserted
from autosync.store.runs import RunContext

Row = dict[str, Any]


class Tx(Protocol):
    """One unit of work (a transaction): the reads and writes of a run's steps."""

    def rollback_after(self, dry: bool) -> AbstractContextManager[Any]:
        """A savepoint rolled back at its end when ``dry`` (a dry run); nothing at all otherwise."""
        ...

    def run_context(self, run_id: int) -> RunContext | None:
        ...

    def due(self, types: Sequence[int], *, user_id: int | None, calendar_ids: Sequence[int] | None, push: bool,
            quiet: bool, renew_before: int, safety_poll: int) -> list[Row]:
        ...

    def start_runs(self, calendar_ids: Sequence[int], *, reason: str, request_id: int | None, rerun: bool,
                   coalesce: bool) -> tuple[list[Row], list[Row]]:
        ...

    def mark_dry_run(self, run_ids: list[int]) -> None:
        ...

    def allow_mass_delete(self, calendar_ids: list[int]) -> None:
        ...

    def set_request_pending(self, request_id: int, pending: int) -> None:
        ...

    def claim_fan_out(self, scope: str, interval: float) -> float | None:
        ...

    def fan_out_runs(self, scope: str, runs: int) -> None:
        ...

    def stale_runs(self, stale_after: int) -> list[Row]:
        ...

    def first_staged_page(self, run_id: int) -> int | None:
        ...

    def touch(self, run_id: int, step: str, requests: int = 0) -> None:
        ...

    def progress(self, run_id: int, step: str, cursor: str | None, requests: int, counts: dict[str, int]) -> None:
        ...

    def finish_run(self, run_id: int, outcome: str, error: str | None, requests: int,
                   counts: dict[str, int]) -> Row | None:
        ...

    def clean_run(self, run_id: int) -> None:
        ...

    def add_requests(self, run_id: int, n: int) -> None:
        """Count provider requests a failed step made."""
        ...

    def deactivate_calendar_of_run(self, run_id: int, reason: str) -> None:
        """Stop syncing the run's calendar (the provider says it is gone), with the reason."""
        ...

    def settle_requests(self, request_ids: list[int], failed: bool) -> list[Row]:
        ...

    def notify(self, user_id: int, kind: str, payload: dict[str, Any]) -> None:
        ...

    def start_rerun(self, calendar_id: int, request_ids: list[int]) -> Row | None:
        ...

    def begin_full(self, run_id: int, window: tuple[datetime, datetime]) -> bool:
        """Turn the run into a full listing; whether the calendar held no live provider rows."""
        ...

    def claim_cursor(self, run_id: int, cursor: str | None) -> bool:
        """Lock an open run still at ``cursor`` (False: finished, or another delivery moved it on)."""
        ...

    def bump_pages(self, run_id: int, n: int) -> None:
        ...

    def outlook_state(self, calendar_id: int, run_id: int, named: Sequence[str], removed: Sequence[str],
                      final: bool) -> dict[str, Any]:
        """What the store knows about the series and @removed ids an Outlook page held in memory names."""
        ...

    def record_series_listed(self, run_id: int, listed: dict[str, dict[str, Any]]) -> None:
        """Record what a page of a full Outlook round listed of each series, for the round's last page."""
        ...

    def series_masters(self, run_id: int) -> list[str]:
        """The series a full Outlook round's pages recorded something of."""
        ...

    def series_listed(self, run_id: int, masters: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """What a full Outlook round's pages recorded of these series (record_series_listed)."""
        ...

    def drop_cursor(self, calendar_id: int) -> None:
        ...

    def commit_cursor(self, calendar_id: int, cursor: str, window: tuple[datetime | None, datetime | None]) -> None:
        ...

    def stage_page(self, run_id: int, body: dict[str, Any], next_cursor: str | None, final: bool) -> int | None:
        ...

    def load_page(self, run_id: int, page_id: int) -> Row | None:
        ...

    def load_outlook_page(self, calendar_id: int, run_id: int, page_id: int) -> Row | None:
        ...

    def drop_page(self, page_id: int) -> bool:
        ...

    def push_due(self, calendar_id: int) -> bool:
        ...

    def watch_due(self, calendar_id: int, renew_before: int) -> bool:
        ...

    def add_push_counts(self, run_id: int, counts: dict[str, int]) -> None:
        ...

    def record_skips(self, run_id: int, calendar_id: int, skipped: Sequence[Skipped]) -> None:
        ...

    def claim_notices(self, limit: int) -> list[Row]:
        """User notifications waiting to be sent (locked: a concurrent sender skips them)."""
        ...

    def notices_sent(self, ids: list[int], *, delivered: bool) -> None:
        """Record a send attempt of these notifications (``delivered``: done with them)."""
        ...

    def claim_lease(self, key: str, holder: str, ttl: float) -> bool:
        """Take the lease on ``key`` for ``ttl`` seconds unless someone else holds it."""
        ...

    def release_lease(self, key: str, holder: str) -> None:
        """Give a lease back (a no-op when it expired and someone else took it)."""
        ...

    def read_token(self, calendar_id: int) -> Row:
        """A calendar's current token columns, opened, with ``known_dead`` and ``reauthReason``."""
        ...

    def save_token(self, run: RunContext, token: str, expires: datetime, refresh: str | None) -> None:
        """Save a refreshed token on every calendar of the account."""
        ...

    def mark_needs_reauth(self, run: RunContext, reason: str) -> list[int]:
        """Put the account's calendars into needs-reauth; returns their ids."""
        ...

    def set_watch_error(self, calendar_id: int, error: str | None, *, lasting: bool = False) -> None:
        """Record why a calendar cannot be watched (``lasting``: wait a day before the next try)."""
        ...

    def live_channels(self, calendar_id: int) -> list[Row]:
        """The live channels that cover a calendar."""
        ...

    def stop_channels(self, channel_ids: list[str]) -> None:
        """Mark channels stopped."""
        ...

    def channel_renewed(self, channel_id: str, expires: datetime) -> None:
        """A channel renewed in place until ``expires``."""
        ...

    def add_channel(self, run: RunContext, *, channel_id: str, calendar_id: int | None, resource_id: str | None,
                    secret_hash: bytes, expires: datetime) -> None:
        """Record a channel the provider just created (its secret only as a hash)."""
        ...

    def channel_due_now(self, channel_id: str) -> None:
        """Make a channel due for renewal."""
        ...

    def calendars_of_channel(self, channel_id: str) -> list[int]:
        """The active calendars a channel covers."""
        ...

    def orphaned_channels(self, channel_id: str | None = None) -> list[Row]:
        """Live channels no active calendar needs (or that one), with what stopping them needs."""
        ...

    def record_seen(self, run_id: int, ext_ids: Sequence[str]) -> None:
        ...

    def stale_instances(self, calendar_id: int, master_id: str, keep: Sequence[str]) -> list[str]:
        ...

    def unseen(self, calendar_id: int, run_id: int, since: date) -> list[str]:
        ...

    def take_pending_deletes(self, run_id: int) -> list[str]:
        ...

    def pend_deletes(self, run_id: int, ext_ids: Sequence[str]) -> None:
        ...

    def unpend_deletes(self, run_id: int, ext_ids: Sequence[str]) -> None:
        ...

    def count_deletable(self, calendar_id: int, ext_ids: Sequence[str]) -> int:
        ...

    def count_live(self, calendar_id: int) -> int:
        ...

    def upsert(self, calendar_id: int, user_id: int, events: Sequence[Event],
               encoded: Encoded | None = None, *, fresh: bool = False) -> Upserted:
        """Write live events; ``encoded``: their rows built ahead by ``Store.encode`` (optional);
        ``fresh``: the calendar held no live provider rows when this full listing began, so the rows
        are expected to be new (a store may insert them without merging, as long as the result is
        the same as a merge's)."""
        ...

    def cancel_instances(self, calendar_id: int, user_id: int, events: Sequence[Event]) -> int:
        ...

    def delete_events(self, calendar_id: int, ext_ids: Sequence[str]) -> int:
        ...

    def drop_hints(self, calendar_id: int, ext_ids: list[str]) -> None:
        ...

    def app_changes(self, calendar_id: int, ext_ids: Sequence[str]) -> list[AppChange]:
        ...

    def record_conflict(self, calendar_id: int, ext_id: str, *, policy: str, winner: str, app: str | None,
                        provider: str | None, outbox_id: int) -> None:
        ...

    def supersede(self, outbox_id: int) -> None:
        ...

    def pending_pushes(self, calendar_id: int) -> list[Row]:
        ...

    def count_deletes(self, calendar_id: int) -> dict[str, int]:
        ...

    def event_row(self, event_id: int) -> Row | None:
        ...

    def share_attendees(self, event_id: int) -> list[Row]:
        ...

    def close_push(self, outbox_id: int, changed_at: datetime, outcome: str, error: str | None) -> None:
        ...

    def retry_push_later(self, outbox_id: int, error: str, delay: float) -> None:
        ...

    def log_push(self, user_id: int, data: dict[str, Any]) -> None:
        ...

    def adopt(self, calendar_id: int, ext_id: str, event_id: int) -> None:
        ...

    def store_pushed(self, event_id: int, stored: dict[str, Any]) -> None:
        ...

    def store_columns(self, event_id: int, columns: dict[str, Any], outbox_id: int, changed_at: datetime) -> None:
        ...

    def mark_deleted(self, event_id: int, outbox_id: int, changed_at: datetime) -> None:
        ...

    def zones_in_use(self, calendar_id: int) -> list[str]:
        ...


class Store(Protocol):
    """Where runs, events, the outbox and their bookkeeping live."""

    def unit(self, *, timeout: float | None = None, origin_sync: bool = True) -> AbstractContextManager[Tx]:
        """One unit of work: everything done through the Tx commits together, or not at all.

        ``timeout``: how long to wait for the storage before giving up; ``origin_sync``: whether the
        writes are autosync's own (imports), not the app's.
        """
        ...

    def encode(self, events: Sequence[Event]) -> Encoded | None:
        """The storage form of ``events``, built outside any unit (no connection held), for a later
        ``Tx.upsert`` of the same event objects; None when the store has nothing to gain from it."""
        ...

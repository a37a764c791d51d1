"""Access tokens: refresh when missing or close to expiry, once per account, under a lease."""

from __future__ import annotations

import logging
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import psycopg_pool

from autosync import errors
from autosync.providers import Adapter, CalendarRef
from autosync.redact import describe
from autosync.services.context import App
from autosync.services.leases import release_quietly
from autosync.settings import Settings, get_settings
from autosync.store import tokens as sql
from autosync.store.api import Tx
from autosync.store.runs import RunContext

log = logging.getLogger(__name__)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def fresh_enough(token: str | None, expires: datetime | None, margin: int) -> bool:
    """True when a token exists and does not expire within ``margin`` seconds."""
    exp = _utc(expires)
    return bool(token) and exp is not None and exp - timedelta(seconds=margin) > datetime.now(UTC)


def calendar_ref(run: RunContext, token: str) -> CalendarRef:
    """Address a calendar for an adapter."""
    account = run.social_account_id or f"cal{run.calendar_id}"
    return CalendarRef(run.calendar_id, run.ext_calendar_id, account, token)


def refresh_lease_seconds(settings: Settings) -> float:
    """How long a refresh may take at most (every attempt timing out, every wait at its cap), plus a margin.

    The lease on an account's refresh lasts this long, so it never expires under a live holder: a
    rotated Microsoft refresh token is then never sent twice, even by a chain that waited.
    """
    attempts = settings.http_retries + 1
    per_attempt = settings.http_connect_timeout + settings.http_read_timeout
    waits = settings.http_retries * max(settings.http_backoff_cap, settings.max_inline_wait)
    return attempts * per_attempt + waits + 5.0


def ensure_token(app: App, run: RunContext, *, stale: str | None = None) -> CalendarRef:
    """A usable access token for the run's calendar.

    ``stale`` is a token the provider just refused (401): refresh unless another worker already
    replaced it. Refreshes of one account are serialized across workers by a lease, and the token is
    read after the lease is claimed, so concurrent chains refresh once and a rotated Microsoft refresh
    token is never used twice (Microsoft may rotate it on every refresh:
    https://learn.microsoft.com/entra/identity-platform/refresh-tokens). No database connection is
    held while the provider answers: the claim (with the read) and the save (with the release) are
    short transactions of their own.
    """
    settings = app.settings
    margin = settings.token_refresh_margin
    if stale is None and run.token and fresh_enough(run.token, run.token_expires_at, margin):
        return calendar_ref(run, run.token)
    provider = app.provider(run.calendar_type)
    key, holder = sql.lease_key(run), uuid.uuid4().hex
    deadline = time.monotonic() + settings.max_inline_wait
    pause = 0.025
    while True:
        with app.store.unit() as tx:
            # Claim, then read: the read sees whatever the previous holder saved before releasing.
            mine = tx.claim_lease(key, holder, refresh_lease_seconds(settings))
            current = tx.read_token(run.calendar_id)
            token = _fresh(current, stale, margin)
            dead = current.get("known_dead")
            if mine and (token or dead):
                tx.release_lease(key, holder)  # nothing left to do under it
        if token:
            return calendar_ref(run, token)  # another chain refreshed it meanwhile
        if dead:
            # Another chain of this account found this refresh token dead: do not send it again, do
            # not notify twice.
            raise errors.AuthRevoked(current.get("reauthReason") or "refresh token revoked")
        if mine:
            return _refresh(app, run, provider, current.get("refreshToken"), key, holder)
        if time.monotonic() >= deadline:
            # Another worker has been refreshing this account's token for a while: come back later
            # without holding a worker slot (the task is rescheduled, not failed).
            raise errors.RateLimited("token refresh of this account in progress", 1.0)
        # Short polls: a refresh takes one provider round trip (100-300 ms); a waiting worker slot.
        time.sleep(min(pause * random.uniform(0.5, 1.5), max(0.0, deadline - time.monotonic())))
        pause = min(pause * 2, 0.1)


def _refresh(app: App, run: RunContext, provider: Adapter, refresh_token: str | None, key: str,
             holder: str) -> CalendarRef:
    """Under the lease: one refresh call with no connection held, then save (or needs-reauth) and
    release in one transaction."""
    released = False
    try:
        try:
            if not refresh_token:
                raise errors.AuthRevoked("no refresh token stored")
            grant = provider.refresh(refresh_token)
        except errors.AuthRevoked as exc:
            with app.store.unit() as tx:  # recorded before the lease is released; no retry loop
                _needs_reauth(tx, run, describe(exc, get_settings().secrets()))
                tx.release_lease(key, holder)
            released = True
            raise
        expires = grant.expires_at.astimezone(UTC).replace(tzinfo=None)
        _save_until_saved(app, run, grant.access_token, expires, grant.refresh_token, key, holder)
        released = True
    finally:
        if not released:  # the call failed (it is retried later) or the save did: free the account now
            release_quietly(app, key, holder)
    log.info("token refreshed", extra={"calendar": run.calendar_id, "provider": provider.name})
    return calendar_ref(run, grant.access_token)


def _save_until_saved(app: App, run: RunContext, access: str, expires: datetime, refresh: str | None, key: str,
                      holder: str) -> None:
    """Save a grant the provider just issued, retrying while PostgreSQL is away.

    The grant exists only in this process's memory: Microsoft may have rotated the refresh token
    (the old one is then refused), so losing it would put the user in needs-reauth. We still hold the
    account's lease, so nobody else refreshes meanwhile; the saves are retried until shortly before
    the lease would expire (the lease covers every wait of a refresh, see refresh_lease_seconds).
    """
    deadline = time.monotonic() + max(5.0, refresh_lease_seconds(get_settings()) - 5.0)
    pause = 0.25
    while True:
        try:
            with app.store.unit() as tx:
                tx.save_token(run, access, expires, refresh)
                tx.release_lease(key, holder)
            return
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            if time.monotonic() + pause >= deadline:
                raise
            log.warning("cannot save a refreshed token yet; retrying",
                        extra={"calendar": run.calendar_id, "error": type(exc).__name__})
            time.sleep(pause)
            pause = min(pause * 2, 5.0)


def _fresh(current: dict[str, Any], stale: str | None, margin: int) -> str | None:
    """The stored token when it is usable: fresh, and not the one the provider just refused."""
    token = current.get("token")
    if token and token != stale and fresh_enough(token, current.get("accessTokenExpirationDate"), margin):
        return str(token)
    return None


def _needs_reauth(tx: Tx, run: RunContext, reason: str) -> None:
    ids = tx.mark_needs_reauth(run, reason)
    tx.notify(run.user_id, "needs_reauth",
           {"calendarIds": ids, "calendarType": run.calendar_type, "reason": reason})

"""Access tokens: refresh when missing or close to expiry, once per account, under a lock."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from autosync import errors
from autosync.providers import CalendarRef
from autosync.redact import describe
from autosync.services.context import Context
from autosync.store import tokens as sql
from autosync.store.db import transaction
from autosync.store.runs import notify

log = logging.getLogger(__name__)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def fresh_enough(token: str | None, expires: datetime | None, margin: int) -> bool:
    """True when a token exists and does not expire within ``margin`` seconds."""
    exp = _utc(expires)
    return bool(token) and exp is not None and exp - timedelta(seconds=margin) > datetime.now(UTC)


def calendar_ref(ctx: dict[str, Any], token: str) -> CalendarRef:
    """Address a calendar for an adapter."""
    account = ctx["socialAccountId"] or f"cal{ctx['calendarId']}"
    return CalendarRef(ctx["calendarId"], ctx["extCalendarId"], account, token)


def ensure_token(app: Context, ctx: dict[str, Any], *, stale: str | None = None) -> CalendarRef:
    """A usable access token for the run's calendar.

    ``stale`` is a token the provider just refused (401): refresh unless another worker already
    replaced it. Refreshes of one account are serialized across workers by an advisory lock, and the
    token is re-read under the lock, so concurrent chains refresh once and a rotated Microsoft
    refresh token is never used twice (trap 15, 16).
    """
    margin = app.settings.token_refresh_margin
    if stale is None and fresh_enough(ctx["token"], ctx["accessTokenExpirationDate"], margin):
        return calendar_ref(ctx, ctx["token"])
    provider = app.provider(ctx["calendarType"])
    revoked: errors.AuthRevoked
    with transaction() as conn:
        sql.lock_account(conn, ctx)
        current = sql.read_token(conn, ctx["calendarId"])
        token = current.get("token")
        if token and token != stale and fresh_enough(token, current.get("accessTokenExpirationDate"), margin):
            return calendar_ref(ctx, token)
        refresh_token = current.get("refreshToken")
        if current.get("known_dead"):
            # Another chain of this account found this refresh token dead while we waited for the
            # lock: do not send it again, do not notify twice.
            raise errors.AuthRevoked(current.get("reauthReason") or "refresh token revoked")
        try:
            if not refresh_token:
                raise errors.AuthRevoked("no refresh token stored")
            grant = provider.refresh(refresh_token)
        except errors.AuthRevoked as exc:
            # Recorded in the same transaction that is then committed; no retry loop.
            _needs_reauth(conn, ctx, describe(exc, app.settings.secrets()))
            revoked = exc
        else:
            expires = grant.expires_at.astimezone(UTC).replace(tzinfo=None)
            sql.save_token(conn, ctx, grant.access_token, expires, grant.refresh_token)
            log.info("token refreshed", extra={"calendar": ctx["calendarId"], "provider": provider.name})
            return calendar_ref(ctx, grant.access_token)
    raise revoked


def _needs_reauth(conn: Any, ctx: dict[str, Any], reason: str) -> None:
    ids = sql.mark_needs_reauth(conn, ctx, reason)
    notify(conn, ctx["userId"], "needs_reauth",
           {"calendarIds": ids, "calendarType": ctx["calendarType"], "reason": reason})

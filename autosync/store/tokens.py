"""SQL for OAuth tokens: the per-account lease key, saving a refreshed token, the needs-reauth state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from autosync.store.db import Conn

# Calendars of one account share its tokens: same socialAccountId, type and user.
_ACCOUNT = (
    '"calendarType" = %(type)s AND "userId" = %(user_id)s AND '
    '(("socialAccountId" IS NULL AND "calendarId" = %(calendar_id)s) OR "socialAccountId" = %(account)s)'
)
READ_TOKEN = (
    'SELECT token, "refreshToken", "accessTokenExpirationDate", '
    '"needsReauth" AND "reauthTokenHash" IS NOT DISTINCT FROM md5(coalesce("refreshToken", \'\')) AS known_dead, '
    '"reauthReason" FROM calendar WHERE "calendarId" = %(calendar_id)s'
)
SAVE_TOKEN = (
    'UPDATE calendar SET token = %(token)s, "accessTokenExpirationDate" = %(expires)s, '
    '"refreshToken" = coalesce(%(refresh)s, "refreshToken"), "needsReauth" = false, "reauthReason" = NULL, '
    '"reauthTokenHash" = NULL WHERE ' + _ACCOUNT
)
NEEDS_REAUTH = (
    'UPDATE calendar SET "needsReauth" = true, "reauthReason" = %(reason)s, "reauthAt" = now(), '
    '"reauthTokenHash" = md5(coalesce("refreshToken", \'\')) WHERE ' + _ACCOUNT + ' RETURNING "calendarId"'
)


def account_params(ctx: dict[str, Any]) -> dict[str, Any]:
    """The parameters that select every calendar row of one account."""
    return {"type": ctx["calendarType"], "user_id": ctx["userId"], "calendar_id": ctx["calendarId"],
            "account": ctx["socialAccountId"]}


def lease_key(ctx: dict[str, Any]) -> str:
    """The lease that serializes token refreshes of one account across all workers."""
    return f"token:{ctx['calendarType']}:{ctx['userId']}:{ctx['socialAccountId'] or 'cal' + str(ctx['calendarId'])}"


def read_token(conn: Conn, calendar_id: int) -> dict[str, Any]:
    """The current token columns of a calendar."""
    row = conn.execute(READ_TOKEN, {"calendar_id": calendar_id}).fetchone()
    return row or {}


def save_token(conn: Conn, ctx: dict[str, Any], token: str, expires: datetime,
               refresh: str | None) -> None:
    """Save a refreshed token on every calendar row of the account, in one statement."""
    conn.execute(SAVE_TOKEN, {**account_params(ctx), "token": token, "expires": expires, "refresh": refresh})


def mark_needs_reauth(conn: Conn, ctx: dict[str, Any], reason: str) -> list[int]:
    """Put every calendar of the account into needs-reauth; returns their ids."""
    rows = conn.execute(NEEDS_REAUTH, {**account_params(ctx), "reason": reason}).fetchall()
    return [r["calendarId"] for r in rows]

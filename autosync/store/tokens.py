"""SQL for OAuth tokens: the per-account lease key, saving a refreshed token, the needs-reauth state, sealing at rest.

Token columns are read and written only here and in `opened` (run contexts): values are sealed on
write and opened on read (store/sealed.py), so callers only ever see plaintext.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from autosync.store.db import Conn
from autosync.store.sealed import PREFIX, Sealer, sealer

if TYPE_CHECKING:
    from autosync.store.runs import RunContext

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
# Replace a calendar's stored tokens only if they are still what was read (compare-and-set): a token
# a worker refreshed, or the app re-linked, meanwhile is never overwritten. The needs-reauth mark
# follows the refresh token it was made for.
RESEAL = (
    'UPDATE calendar SET token = %(new_token)s, "refreshToken" = %(new_refresh)s, '
    '"reauthTokenHash" = CASE WHEN "reauthTokenHash" = md5(coalesce("refreshToken", \'\')) '
    'THEN md5(coalesce(%(new_refresh)s, \'\')) ELSE "reauthTokenHash" END '
    'WHERE "calendarId" = %(c)s AND token IS NOT DISTINCT FROM %(old_token)s '
    'AND "refreshToken" IS NOT DISTINCT FROM %(old_refresh)s'
)
# Calendars with a token column not sealed with %(pattern)s ('enc1:%' for any key, 'enc1:<id>:%' for one).
UNSEALED_AFTER = (
    'SELECT "calendarId", token, "refreshToken" FROM calendar WHERE "calendarId" > %(after)s '
    'AND ((token IS NOT NULL AND token NOT LIKE %(pattern)s) '
    'OR ("refreshToken" IS NOT NULL AND "refreshToken" NOT LIKE %(pattern)s)) '
    'ORDER BY "calendarId" LIMIT %(limit)s'
)
SEALING_STATUS = (
    "SELECT CASE WHEN v IS NULL THEN 'empty' WHEN v NOT LIKE 'enc1:%%' THEN 'plaintext' "
    "ELSE split_part(v, ':', 2) END AS state, count(*) AS n "
    'FROM calendar, LATERAL (VALUES (token), ("refreshToken")) AS t(v) GROUP BY 1 ORDER BY 1'
)
NEEDS_REAUTH = (
    'UPDATE calendar SET "needsReauth" = true, "reauthReason" = %(reason)s, "reauthAt" = now(), '
    '"reauthTokenHash" = md5(coalesce("refreshToken", \'\')) WHERE ' + _ACCOUNT + ' RETURNING "calendarId"'
)


def account_params(run: RunContext) -> dict[str, Any]:
    """The parameters that select every calendar row of one account."""
    return {"type": run.calendar_type, "user_id": run.user_id, "calendar_id": run.calendar_id,
            "account": run.social_account_id}


def lease_key(run: RunContext) -> str:
    """The lease that serializes token refreshes of one account across all workers."""
    return f"token:{run.calendar_type}:{run.user_id}:{run.social_account_id or 'cal' + str(run.calendar_id)}"


def read_token(conn: Conn, calendar_id: int) -> dict[str, Any]:
    """The current token columns of a calendar, opened."""
    row = conn.execute(READ_TOKEN, {"calendar_id": calendar_id}).fetchone()
    if not row:
        return {}
    box = sealer()
    return {**row, "token": box.open(row["token"]), "refreshToken": box.open(row["refreshToken"])}


def save_token(conn: Conn, run: RunContext, token: str, expires: datetime,
               refresh: str | None) -> None:
    """Save a refreshed token (sealed) on every calendar row of the account, in one statement."""
    box = sealer()
    conn.execute(SAVE_TOKEN, {**account_params(run), "token": box.seal(token), "expires": expires,
                              "refresh": box.seal(refresh)})


def opened(conn: Conn, calendar_id: int, token: str | None, refresh: str | None) -> tuple[str | None, str | None]:
    """A calendar's tokens opened; plaintext ones (the app's) are sealed in place on the way."""
    box = sealer()
    plain_token, plain_refresh = box.open(token), box.open(refresh)
    if not (box.is_current(token) and box.is_current(refresh)):
        reseal(conn, box, calendar_id, token, refresh, plain_token, plain_refresh)
    return plain_token, plain_refresh


def reseal(conn: Conn, box: Sealer, calendar_id: int, token: str | None, refresh: str | None,
           plain_token: str | None, plain_refresh: str | None) -> bool:
    """Store a calendar's tokens sealed with the current key, unless they changed meanwhile; True when done."""
    new_token = token if box.is_current(token) else box.seal(plain_token)
    new_refresh = refresh if box.is_current(refresh) else box.seal(plain_refresh)
    done = conn.execute(RESEAL, {"c": calendar_id, "old_token": token, "old_refresh": refresh,
                                 "new_token": new_token, "new_refresh": new_refresh})
    return done.rowcount == 1


def unsealed_after(conn: Conn, after: int, limit: int, *, key: str | None) -> list[dict[str, Any]]:
    """The next calendars (by id) with a token not sealed at all (``key`` None) or not with ``key``."""
    pattern = f"{PREFIX}%" if key is None else f"{PREFIX}{key}:%"
    return conn.execute(UNSEALED_AFTER, {"after": after, "limit": limit, "pattern": pattern}).fetchall()


def sealing_status(conn: Conn) -> dict[str, int]:
    """How many token values are empty, plaintext, or sealed with each key id."""
    return {r["state"]: int(r["n"]) for r in conn.execute(SEALING_STATUS, {}).fetchall()}


def mark_needs_reauth(conn: Conn, run: RunContext, reason: str) -> list[int]:
    """Put every calendar of the account into needs-reauth; returns their ids."""
    rows = conn.execute(NEEDS_REAUTH, {**account_params(run), "reason": reason}).fetchall()
    return [r["calendarId"] for r in rows]

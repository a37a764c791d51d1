"""SQL for change-notification channels (Google watch channels, Graph subscriptions)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from autosync.errors import TokenUnreadable
from autosync.store.db import Conn
from autosync.store.sealed import sealer

if TYPE_CHECKING:
    from autosync.store.runs import RunContext

# A channel covers its own calendar, or (calendarId NULL: a Graph subscription) every calendar of
# the same mailbox. `c` is the calendar, `p` the channel.
COVERS = (
    '(p."calendarId" = c."calendarId" OR (p."calendarId" IS NULL AND p."calendarType" = c."calendarType" '
    'AND p."userId" = c."userId" AND p."socialAccountId" = c."socialAccountId"))'
)
# True when a live channel covers calendar `c` for at least %(renew_before)s more seconds.
WATCHED = (
    'EXISTS (SELECT 1 FROM push_channel p WHERE p."stoppedAt" IS NULL '
    'AND p."expiresAt" > now() + make_interval(secs => %(renew_before)s) AND ' + COVERS + ")"
)
LIVE_FOR_CALENDAR = (
    'SELECT p.* FROM push_channel p JOIN calendar c ON ' + COVERS + ' WHERE c."calendarId" = %(c)s '
    'AND p."stoppedAt" IS NULL ORDER BY p."expiresAt" DESC'
)
# A calendar needs its watch step when no channel covers it long enough, unless watching it failed
# lately (some calendars cannot be watched: do not pay a failing request every cycle).
NEEDS_WATCH = (
    "(NOT " + WATCHED + ' AND (c."watchErrorAt" IS NULL '
    'OR c."watchErrorAt" < now() - make_interval(secs => %(renew_before)s)))'
)
WATCH_DUE = "SELECT " + NEEDS_WATCH + ' AS due FROM calendar c WHERE c."calendarId" = %(c)s'
INSERT = (
    'INSERT INTO push_channel ("channelId", "calendarType", "userId", "socialAccountId", "calendarId", '
    '"resourceId", "secretHash", "expiresAt") VALUES (%(id)s, %(type)s, %(user_id)s, %(account)s, %(calendar_id)s, '
    "%(resource_id)s, %(secret_hash)s, %(expires)s)"
)
RENEWED = (
    'UPDATE push_channel SET "expiresAt" = %(expires)s, "renewedAt" = now() WHERE "channelId" = %(id)s'
)
STOP = 'UPDATE push_channel SET "stoppedAt" = now() WHERE "channelId" = ANY(%(ids)s) AND "stoppedAt" IS NULL'
# The receiver's own list of live channels: loaded whole, then kept current from NOTIFY payloads.
LIVE_CHANNELS = 'SELECT "channelId", "calendarType", "secretHash" FROM push_channel WHERE "stoppedAt" IS NULL'
CHANNELS_BY_ID = (
    'SELECT "channelId", "calendarType", "secretHash", "stoppedAt" IS NULL AS live FROM push_channel '
    'WHERE "channelId" = ANY(%(ids)s)'
)
CHANNEL_EVENTS = "LISTEN autosync_push_channel"
# The receiver answers within the providers' budget (Graph: 3 s) or not at all: a row held by a
# renewal, or a slow database, gives 503 (the provider delivers again) rather than a late answer.
RECEIVER_LIMITS = (
    "SELECT set_config('lock_timeout', '1s', true), set_config('statement_timeout', '2s', true)"
)
# Rows locked in one order, so two deliveries of overlapping batches cannot deadlock.
LOCK_LIVE = (
    'SELECT "channelId", "lastMessageNumber" FROM push_channel WHERE "channelId" = ANY(%(ids)s) '
    'AND "calendarType" = %(type)s AND "stoppedAt" IS NULL ORDER BY "channelId" FOR UPDATE'
)
COUNT_MESSAGES = (
    'UPDATE push_channel p SET messages = p.messages + n.count, "lastMessageAt" = now(), "lastEvent" = n.event, '
    '"lastMessageNumber" = greatest(p."lastMessageNumber", n.number) '
    "FROM unnest(%(ids)s::text[], %(events)s::text[], %(counts)s::int[], %(numbers)s::bigint[]) "
    'AS n(id, event, count, number) WHERE p."channelId" = n.id'
)
# Graph notifications named items: keep each for the calendars of the mailbox that store it as a live
# series master, as series_hint (other items show in the delta; see migration 0008).
HINT_SERIES = (
    'INSERT INTO series_hint ("calendarId", "extEventId") SELECT DISTINCT e."calendarId", e."extEventId" '
    'FROM unnest(%(ids)s::text[], %(items)s::text[]) AS n(channel, item) '
    'JOIN push_channel p ON p."channelId" = n.channel AND p."stoppedAt" IS NULL '
    'JOIN calendar c ON ' + COVERS + ' JOIN cal_event e ON e."calendarId" = c."calendarId" '
    'AND e."extEventId" = n.item WHERE c.status AND e.status AND e.recurrence IS NOT NULL '
    'AND e."recurringEventId" IS NULL ON CONFLICT DO NOTHING'
)
DROP_HINTS = 'DELETE FROM series_hint WHERE "calendarId" = %(c)s AND "extEventId" = ANY(%(ext)s)'
# Graph asks for a renewal (reauthorizationRequired): make the subscription due now.
DUE_NOW = 'UPDATE push_channel SET "expiresAt" = least("expiresAt", now()) WHERE "channelId" = %(id)s'
CALENDARS_OF = (
    'SELECT c."calendarId", c."calendarType" FROM push_channel p JOIN calendar c ON ' + COVERS + ' '
    'WHERE p."channelId" = %(id)s AND c.status ORDER BY c."calendarId"'
)
# Live channels no active calendar needs any more (unlinked or switched off), with a calendar row of
# theirs for its stored token (NULL when none is left: the channel then simply expires).
ORPHANED = (
    'SELECT p."channelId", p."resourceId", p."calendarType", p."userId", p."socialAccountId", '
    'c."calendarId", c."extCalendarId", c.token, c."accessTokenExpirationDate" FROM push_channel p '
    'LEFT JOIN LATERAL (SELECT c.* FROM calendar c WHERE ' + COVERS + ' ORDER BY c."calendarId" LIMIT 1) c ON true '
    'WHERE p."stoppedAt" IS NULL AND (%(id)s::text IS NULL OR p."channelId" = %(id)s) '
    # COVERS spelled out per kind, so each branch is an index lookup.
    'AND CASE WHEN p."calendarId" IS NOT NULL THEN NOT EXISTS (SELECT 1 FROM calendar a '
    'WHERE a."calendarId" = p."calendarId" AND a.status) '
    'ELSE NOT EXISTS (SELECT 1 FROM calendar a WHERE a.status AND a."calendarType" = p."calendarType" '
    'AND a."userId" = p."userId" AND a."socialAccountId" = p."socialAccountId") END '
    'ORDER BY p."channelId" LIMIT 1000'
)
SET_WATCH_ERROR = (
    'UPDATE calendar SET "watchError" = %(error)s, "watchErrorAt" = CASE WHEN %(lasting)s THEN now() END '
    'WHERE "calendarId" = %(c)s'
)
def watch_key(run: RunContext) -> str:
    """The lease that serializes channel changes: per mailbox for Graph (one subscription covers every
    calendar of a mailbox), per calendar for Google (one channel per calendar)."""
    per_calendar = run.calendar_type == 1 or not run.social_account_id
    owner = f"cal{run.calendar_id}" if per_calendar else run.social_account_id
    return f"watch:{run.calendar_type}:{run.user_id}:{owner}"


def live_for_calendar(conn: Conn, calendar_id: int) -> list[dict[str, Any]]:
    """Channels that cover a calendar and were not stopped (newest expiry first)."""
    return conn.execute(LIVE_FOR_CALENDAR, {"c": calendar_id}).fetchall()


def watch_due(conn: Conn, calendar_id: int, renew_before: int) -> bool:
    """Whether the calendar needs a channel created or renewed now."""
    row = conn.execute(WATCH_DUE, {"c": calendar_id, "renew_before": renew_before}).fetchone()
    return bool(row and row["due"])


def insert(conn: Conn, run: RunContext, *, channel_id: str, calendar_id: int | None,
           resource_id: str | None, secret_hash: bytes, expires: datetime) -> None:
    """Record a channel the provider just created (its secret only as a hash)."""
    conn.execute(INSERT, {"id": channel_id, "type": run.calendar_type, "user_id": run.user_id,
                          "account": run.social_account_id, "calendar_id": calendar_id,
                          "resource_id": resource_id, "secret_hash": secret_hash, "expires": expires})


def renewed(conn: Conn, channel_id: str, expires: datetime) -> None:
    """A subscription's new expiry."""
    conn.execute(RENEWED, {"id": channel_id, "expires": expires})


def stop(conn: Conn, channel_ids: list[str]) -> None:
    """Channels whose notifications are ignored from now on."""
    if channel_ids:
        conn.execute(STOP, {"ids": channel_ids})


def live_channels(conn: Conn) -> list[dict[str, Any]]:
    """Every live channel: id, calendarType and secret hash."""
    return conn.execute(LIVE_CHANNELS).fetchall()


def channels_by_id(conn: Conn, channel_ids: list[str]) -> list[dict[str, Any]]:
    """These channels as they are now (``live`` false once stopped; absent once deleted)."""
    return conn.execute(CHANNELS_BY_ID, {"ids": channel_ids}).fetchall()


def listen_for_channels(conn: Conn) -> None:
    """Subscribe (autocommit connection) to the id of every channel inserted, stopped or deleted."""
    conn.execute(CHANNEL_EVENTS)


def take_messages(conn: Conn, calendar_type: int,
                  messages: list[tuple[str, str, int, int | None]]) -> dict[str, int | None]:
    """Count verified notifications (channel, event, how many, Google message number) on their live channels.

    Returns each live channel's highest message number before these, so a replay is recognised.
    """
    conn.execute(RECEIVER_LIMITS)
    ids = [m[0] for m in messages]
    live = {r["channelId"]: r["lastMessageNumber"]
            for r in conn.execute(LOCK_LIVE, {"ids": ids, "type": calendar_type}).fetchall()}
    kept = [m for m in messages if m[0] in live]
    if kept:
        conn.execute(COUNT_MESSAGES, {"ids": [m[0] for m in kept], "events": [m[1][:64] for m in kept],
                                      "counts": [m[2] for m in kept], "numbers": [m[3] for m in kept]})
    return live


def hint_series(conn: Conn, named: list[tuple[str, str]]) -> None:
    """Remember notified items (channel, item id) for the calendars that store them as series masters."""
    if named:
        conn.execute(HINT_SERIES, {"ids": [n[0] for n in named], "items": [n[1] for n in named]})


def drop_hints(conn: Conn, calendar_id: int, ext_ids: list[str]) -> None:
    """Forget hints a round has dealt with."""
    if ext_ids:
        conn.execute(DROP_HINTS, {"c": calendar_id, "ext": ext_ids})


def due_now(conn: Conn, channel_id: str) -> None:
    """Make a channel due for renewal."""
    conn.execute(DUE_NOW, {"id": channel_id})


def calendars_of(conn: Conn, channel_id: str) -> list[dict[str, Any]]:
    """Active calendars a channel covers."""
    return conn.execute(CALENDARS_OF, {"id": channel_id}).fetchall()


def set_watch_error(conn: Conn, calendar_id: int, error: str | None, *, lasting: bool = False) -> None:
    """Record (or clear) why watching a calendar failed; ``lasting``: do not try again for a while."""
    conn.execute(SET_WATCH_ERROR, {"c": calendar_id, "error": error, "lasting": lasting and error is not None})


def orphaned(conn: Conn, channel_id: str | None = None) -> list[dict[str, Any]]:
    """Live channels that cover no active calendar (one of them when ``channel_id`` is given).

    ``token`` is the stored access token, opened; None when there is none or it cannot be opened
    (the channel is then forgotten and expires on its own).
    """
    box = sealer()
    rows = conn.execute(ORPHANED, {"id": channel_id}).fetchall()
    for row in rows:
        try:
            row["token"] = box.open(row["token"])
        except TokenUnreadable:
            row["token"] = None
    return rows

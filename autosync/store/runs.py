"""SQL for calendars, tokens, sync runs, staged pages, requests and notifications."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import orjson
from psycopg.rows import class_row

from autosync.model import Provider, Skipped
from autosync.normalize.common import MAX_NESTING, UNSTAGED
from autosync.store import channels as channels_sql
from autosync.store import tokens as tokens_sql
from autosync.store.db import Conn
from autosync.store.events import FOREIGN_REMOVALS

log = logging.getLogger(__name__)

# Active calendars of the requested types. A needs-reauth calendar is skipped until its tokens
# change (the stored hash no longer matches the current refresh token). With change notifications
# on (%(push)s), `watch_due` says a channel must be created or renewed, and a "quiet" selection
# (the beat's) skips a watched calendar unless it has app changes to push, its last run did not end
# well, it has no cursor yet, or its safety poll is due: notifications start the other runs.
SELECT_DUE = (
    'SELECT c."calendarId", c."calendarType", c."userId", c."accessTokenExpirationDate", '
    "c.token IS NOT NULL AS has_token, %(push)s AND " + channels_sql.NEEDS_WATCH + " AS watch_due "
    "FROM calendar c WHERE c.status AND c.\"calendarType\" = ANY(%(types)s) "
    'AND (%(user_id)s::bigint IS NULL OR c."userId" = %(user_id)s) '
    'AND (%(calendar_ids)s::bigint[] IS NULL OR c."calendarId" = ANY(%(calendar_ids)s)) '
    'AND (NOT c."needsReauth" OR c."reauthTokenHash" IS DISTINCT FROM md5(coalesce(c."refreshToken", \'\'))) '
    "AND (NOT %(quiet)s OR NOT " + channels_sql.WATCHED + ' OR c."deltaLink" IS NULL '
    "OR c.\"lastOutcome\" IS DISTINCT FROM 'ok' OR c.\"lastSyncDate\" IS NULL "
    "OR c.\"lastSyncDate\" < (now() AT TIME ZONE 'UTC') - make_interval(secs => %(safety_poll)s) "
    'OR EXISTS (SELECT 1 FROM event_outbox o WHERE o."calendarId" = c."calendarId" AND o."doneAt" IS NULL '
    'AND o."nextAttemptAt" <= now())) '
    'ORDER BY c."calendarId"'
)
# A periodic fan-out claims its interval: it runs only when the last one of its scope is at least
# %(min_gap)s seconds old. Two beats firing in the same interval then open runs once. The row stays
# locked until the fan-out commits, so a concurrent claim waits and then sees the new "lastAt".
CLAIM_FAN_OUT = (
    'INSERT INTO fan_out (scope, "lastAt", "interval") VALUES (%(scope)s, now(), %(interval)s) '
    'ON CONFLICT (scope) DO UPDATE SET "lastAt" = now(), "interval" = EXCLUDED."interval" '
    'WHERE fan_out."lastAt" <= now() - make_interval(secs => %(min_gap)s) RETURNING scope'
)
SKIP_FAN_OUT = (
    'UPDATE fan_out SET duplicates = duplicates + 1, "lastDuplicateAt" = now() WHERE scope = %(scope)s '
    'RETURNING extract(epoch FROM now() - "lastAt") AS age'
)
FAN_OUT_RUNS = 'UPDATE fan_out SET "lastRuns" = %(runs)s WHERE scope = %(scope)s'
START_RUNS = (
    'INSERT INTO sync_run ("calendarId", reason, "requestIds") '
    "SELECT unnest(%(calendar_ids)s::bigint[]), %(reason)s, %(request_ids)s::bigint[] "
    'ON CONFLICT ("calendarId") WHERE "finishedAt" IS NULL DO NOTHING '
    'RETURNING "runId", "calendarId"'
)
# A request that finds a dry run in progress asks for a real run after it (whatever its reason).
COALESCE_RUNS = (
    'UPDATE sync_run SET "rerunRequested" = "rerunRequested" OR %(rerun)s OR "dryRun", '
    '"requestIds" = "requestIds" || %(request_ids)s::bigint[] '
    'WHERE "calendarId" = ANY(%(calendar_ids)s) AND "finishedAt" IS NULL RETURNING "runId", "calendarId"'
)
STALE_RUNS = (
    'SELECT r."runId", r."calendarId", r.step, c."calendarType" FROM sync_run r '
    'JOIN calendar c ON c."calendarId" = r."calendarId" WHERE r."finishedAt" IS NULL '
    'AND r."heartbeatAt" < now() - make_interval(secs => %(stale)s) ORDER BY r."runId"'
)
# A run joined with its calendar, one column per RunContext field.
RUN_CONTEXT = (
    'SELECT r."runId" AS run_id, r."calendarId" AS calendar_id, r."finishedAt" AS finished_at, '
    'r."fullSync" AS full_sync, r."pageCursor" AS page_cursor, r."windowStart" AS window_start, '
    'r."windowEnd" AS window_end, r."allowMassDelete" AS allow_mass_delete, r."dryRun" AS dry_run, '
    'c."userId" AS user_id, c."calendarType" AS calendar_type, c."extCalendarId" AS ext_calendar_id, '
    'c."socialAccountId" AS social_account_id, c.token, c."refreshToken" AS refresh_token, '
    'c."accessTokenExpirationDate" AS token_expires_at, c."deltaLink" AS delta_link, '
    'c."syncWindowStart" AS sync_window_start, c."syncWindowEnd" AS sync_window_end, '
    'c.status AS calendar_active, '
    # Outlook: whether the round's last page has checks to make even when empty (pull.fetch_step).
    '(EXISTS (SELECT 1 FROM series_hint h WHERE h."calendarId" = c."calendarId") OR EXISTS (SELECT 1 '
    'FROM sync_seen s WHERE s."runId" = r."runId" AND s."extEventId" = \'' + FOREIGN_REMOVALS + '\')) '
    'AS last_page_checks, '
    # Deletions earlier pages of this run found, waiting for the run's last page (pull._write).
    'EXISTS (SELECT 1 FROM sync_pending_delete p WHERE p."runId" = r."runId") AS pending_deletes, '
    # A full listing that began on a calendar without live provider rows tracks nothing it lists (0013).
    'r."emptyAtStart" AS empty_at_start '
    'FROM sync_run r JOIN calendar c ON c."calendarId" = r."calendarId" WHERE r."runId" = %(run_id)s'
)
LOCK_RUN = 'SELECT * FROM sync_run WHERE "runId" = %(run_id)s FOR UPDATE'
TOUCH_RUN = (
    'UPDATE sync_run SET step = %(step)s, "heartbeatAt" = now(), '
    '"providerRequests" = "providerRequests" + %(requests)s WHERE "runId" = %(run_id)s'
)
# A run turns into a full listing over this window (first run, invalid cursor, window roll).
# "emptyAtStart": the calendar holds no live provider rows, so the run need not track what it lists
# to find deletions (migration 0013); decided here once, kept if the run is resumed.
START_FULL_SYNC = (
    'UPDATE sync_run SET "fullSync" = true, "pageCursor" = NULL, "heartbeatAt" = now(), '
    '"windowStart" = %(window_start)s, "windowEnd" = %(window_end)s, "emptyAtStart" = NOT EXISTS '
    '(SELECT 1 FROM cal_event e WHERE e."calendarId" = sync_run."calendarId" AND e.status '
    'AND e."extEventId" IS NOT NULL) WHERE "runId" = %(run_id)s RETURNING "emptyAtStart"'
)
RUN_DELETED_SO_FAR = 'SELECT "eventsDeleted" FROM sync_run WHERE "runId" = %(run_id)s'
ALLOW_MASS_DELETE = (
    'UPDATE sync_run SET "allowMassDelete" = true WHERE "finishedAt" IS NULL AND "calendarId" = ANY(%(c)s)'
)
FIRST_STAGED_PAGE = 'SELECT "pageId" FROM sync_page WHERE "runId" = %(run_id)s ORDER BY "pageNo" LIMIT 1'
# The extra run a coalesced ad-hoc request asked for; joins a run that is already open instead.
START_RERUN = (
    'INSERT INTO sync_run ("calendarId", reason, "requestIds") VALUES (%(c)s, \'rerun\', %(r)s) '
    'ON CONFLICT ("calendarId") WHERE "finishedAt" IS NULL DO UPDATE SET '
    '"requestIds" = sync_run."requestIds" || EXCLUDED."requestIds" RETURNING "runId", (xmax = 0) AS new'
)
ADD_REQUESTS = (
    'UPDATE sync_run SET "providerRequests" = "providerRequests" + %(n)s WHERE "runId" = %(run_id)s'
)
ADD_PUSH_COUNTS = (
    'UPDATE sync_run SET "pushCreated" = "pushCreated" + %(pushCreated)s, '
    '"pushUpdated" = "pushUpdated" + %(pushUpdated)s, "pushDeleted" = "pushDeleted" + %(pushDeleted)s, '
    '"pushFailed" = "pushFailed" + %(pushFailed)s WHERE "runId" = %(run_id)s'
)
# The provider says the calendar itself is gone: deactivate it with the reason.
DEACTIVATE_CALENDAR_OF_RUN = (
    'UPDATE calendar SET status = false, "deactivatedReason" = %(reason)s WHERE "calendarId" = '
    '(SELECT "calendarId" FROM sync_run WHERE "runId" = %(run_id)s)'
)
PUSH_DUE = (
    'SELECT 1 FROM event_outbox WHERE "calendarId" = %(c)s AND "doneAt" IS NULL AND "nextAttemptAt" <= now() '
    "LIMIT 1"
)
USER_EXISTS = 'SELECT 1 FROM user_main WHERE "userId" = %(u)s'
STAGE_PAGE = (
    'INSERT INTO sync_page ("runId", "pageNo", body, "nextCursor", "isFinal") '
    'SELECT %(run_id)s, "pagesFetched" + 1, %(body)s::jsonb, %(next)s, %(final)s '
    'FROM sync_run WHERE "runId" = %(run_id)s '
    'ON CONFLICT ("runId", "pageNo") DO NOTHING RETURNING "pageId"'
)
BUMP_PAGES = 'UPDATE sync_run SET "pagesFetched" = "pagesFetched" + %(n)s WHERE "runId" = %(run_id)s'
# A full run's page written without staging: the run still open and still at the token it was listed with.
CLAIM_CURSOR = (
    'SELECT 1 FROM sync_run WHERE "runId" = %(run_id)s AND "finishedAt" IS NULL '
    'AND "pageCursor" IS NOT DISTINCT FROM %(cursor)s FOR UPDATE'
)
LOAD_PAGE = 'SELECT * FROM sync_page WHERE "pageId" = %(page_id)s AND "runId" = %(run_id)s FOR UPDATE'
DROP_PAGE = 'DELETE FROM sync_page WHERE "pageId" = %(page_id)s RETURNING "pageId"'
# The cursor and the events of the page that produced it commit together.
COMMIT_CURSOR = (
    'UPDATE calendar SET "deltaLink" = %(cursor)s, "lastSyncDate" = (now() AT TIME ZONE \'UTC\'), '
    '"cursorUpdatedAt" = now(), "syncWindowStart" = %(window_start)s, "syncWindowEnd" = %(window_end)s '
    'WHERE "calendarId" = %(calendar_id)s'
)
DROP_CURSOR = (
    'UPDATE calendar SET "deltaLink" = NULL, "cursorUpdatedAt" = now() WHERE "calendarId" = %(calendar_id)s'
)
# Progress of a run that goes on: step, heartbeat, requests and counts in one statement.
PROGRESS = (
    'UPDATE sync_run SET step = %(step)s, "heartbeatAt" = now(), "pageCursor" = %(cursor)s, '
    '"providerRequests" = "providerRequests" + %(requests)s, '
    '"eventsUpserted" = "eventsUpserted" + %(upserted)s, "eventsUnchanged" = "eventsUnchanged" + %(unchanged)s, '
    '"eventsDeleted" = "eventsDeleted" + %(deleted)s, "eventsSkipped" = "eventsSkipped" + %(skipped)s, '
    'conflicts = conflicts + %(conflicts)s WHERE "runId" = %(run_id)s'
)
# Close a run (once) with its last counts, and record the outcome on its calendar: one round trip.
FINISH_RUN = (
    "WITH r AS (UPDATE sync_run SET outcome = %(outcome)s, error = %(error)s, step = 'done', "
    '"finishedAt" = now(), "heartbeatAt" = now(), "pageCursor" = NULL, '
    '"providerRequests" = "providerRequests" + %(requests)s, '
    '"eventsUpserted" = "eventsUpserted" + %(upserted)s, "eventsUnchanged" = "eventsUnchanged" + %(unchanged)s, '
    '"eventsDeleted" = "eventsDeleted" + %(deleted)s, "eventsSkipped" = "eventsSkipped" + %(skipped)s, '
    'conflicts = conflicts + %(conflicts)s '
    'WHERE "runId" = %(run_id)s AND "finishedAt" IS NULL RETURNING *), '
    # A dry run leaves the calendar's outcome alone (the beat reads it).
    'c AS (UPDATE calendar SET "lastOutcome" = %(outcome)s, "lastError" = %(error)s FROM r '
    'WHERE calendar."calendarId" = r."calendarId" AND NOT r."dryRun") '
    'SELECT r.*, k."userId", k."calendarType" FROM r JOIN calendar k ON k."calendarId" = r."calendarId"'
)
NO_COUNTS = {"upserted": 0, "unchanged": 0, "deleted": 0, "skipped": 0, "conflicts": 0}
# A run's listing bookkeeping: ids seen by a full listing and deletions waiting for its last page.
CLEAN_SEEN = (
    'WITH p AS (DELETE FROM sync_pending_delete WHERE "runId" = %(run_id)s), '
    's AS (DELETE FROM sync_series_listed WHERE "runId" = %(run_id)s) '
    'DELETE FROM sync_seen WHERE "runId" = %(run_id)s'
)
# What each page of a full Outlook round listed of its series (services/outlook_checks.full_round).
RECORD_SERIES_LISTED = 'COPY sync_series_listed ("runId", "masterId", listed) FROM STDIN'
SERIES_MASTERS = 'SELECT DISTINCT "masterId" FROM sync_series_listed WHERE "runId" = %(run_id)s'
SERIES_LISTED = (
    'SELECT "masterId", listed FROM sync_series_listed WHERE "runId" = %(run_id)s AND "masterId" = ANY(%(m)s)'
)

MARK_DRY_RUN = 'UPDATE sync_run SET "dryRun" = true WHERE "runId" = ANY(%(run_ids)s)'
CLEAN_PAGES = 'DELETE FROM sync_page WHERE "runId" = %(run_id)s'
REQUEST_DONE = (
    'UPDATE sync_request SET pending = pending - 1, failed = failed + %(failed)s, '
    '"finishedAt" = CASE WHEN pending - 1 <= 0 THEN now() END '
    'WHERE "requestId" = ANY(%(ids)s) RETURNING *'
)
RECORD_SKIPS = (
    'INSERT INTO sync_skip ("runId", "calendarId", "extEventId", reason) '
    "SELECT %(run_id)s, %(calendar_id)s, unnest(%(ids)s::text[]), unnest(%(reasons)s::text[])"
)
NOTIFY = 'INSERT INTO notification ("userId", kind, payload) VALUES (%(user_id)s, %(kind)s, %(payload)s::jsonb)'
CREATE_REQUEST = (
    'INSERT INTO sync_request ("userId", "calendarType", "silentNotification", source) '
    'VALUES (%(user_id)s, %(calendar_type)s, %(silent)s, %(source)s) RETURNING "requestId"'
)
SET_REQUEST_PENDING = (
    'UPDATE sync_request SET pending = %(pending)s, "finishedAt" = CASE WHEN %(pending)s = 0 THEN now() END '
    'WHERE "requestId" = %(request_id)s'
)
CLOSE_UNSENT_REQUEST = (
    'UPDATE sync_request SET pending = 0, "finishedAt" = now(), error = %(error)s '
    'WHERE "requestId" = %(request_id)s AND "finishedAt" IS NULL'
)
REQUEST_STATUS = 'SELECT * FROM sync_request WHERE "requestId" = %(request_id)s'
RUNS_OF_REQUEST = 'SELECT * FROM sync_run WHERE %(request_id)s = ANY("requestIds") ORDER BY "runId"'


def select_due(conn: Conn, types: Sequence[int], *, user_id: int | None = None,
               calendar_ids: Sequence[int] | None = None, push: bool = False, quiet: bool = False,
               renew_before: int = 0, safety_poll: int = 0) -> list[dict[str, Any]]:
    """Calendars to sync now (``quiet``: leave out watched calendars that need no run)."""
    return conn.execute(SELECT_DUE, {"types": list(types), "user_id": user_id,
                                     "calendar_ids": list(calendar_ids) if calendar_ids is not None else None,
                                     "push": push, "quiet": quiet and push, "renew_before": renew_before,
                                     "safety_poll": safety_poll}).fetchall()


def start_runs(conn: Conn, calendar_ids: Sequence[int], *, reason: str,
               request_id: int | None, rerun: bool, coalesce: bool = True
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Open one run per calendar; calendars with a run in progress are coalesced into it
    (unless ``coalesce`` is false: a dry run leaves them out).

    Returns (new runs, coalesced runs).
    """
    req = [request_id] if request_id is not None else []
    params = {"calendar_ids": list(calendar_ids), "reason": reason, "request_ids": req}
    created = conn.execute(START_RUNS, params).fetchall()
    rest = sorted(set(calendar_ids) - {r["calendarId"] for r in created})
    coalesced = conn.execute(COALESCE_RUNS, {"calendar_ids": rest, "rerun": rerun, "request_ids": req}
                             ).fetchall() if rest and coalesce else []
    return created, coalesced


def claim_fan_out(conn: Conn, scope: str, interval: float) -> float | None:
    """Claim this interval's fan-out; None when claimed, else how many seconds ago the last one ran."""
    claimed = conn.execute(CLAIM_FAN_OUT, {"scope": scope, "interval": round(interval),
                                           "min_gap": 0.6 * interval}).fetchone()
    if claimed is not None:
        return None
    row = conn.execute(SKIP_FAN_OUT, {"scope": scope}).fetchone()
    return float(row["age"]) if row else 0.0


def stale_runs(conn: Conn, stale_after: int) -> list[dict[str, Any]]:
    """Runs whose worker stopped reporting (killed mid-run): to be resumed."""
    return conn.execute(STALE_RUNS, {"stale": stale_after}).fetchall()


@dataclass(frozen=True)
class RunContext:
    """One run as its steps see it: the sync_run row joined with its calendar (tokens opened)."""

    run_id: int
    calendar_id: int
    finished_at: datetime | None
    full_sync: bool
    page_cursor: str | None
    window_start: datetime | None
    window_end: datetime | None
    allow_mass_delete: bool
    dry_run: bool
    user_id: int
    calendar_type: Provider
    ext_calendar_id: str | None
    social_account_id: str | None
    token: str | None = field(repr=False)
    refresh_token: str | None = field(repr=False)
    token_expires_at: datetime | None
    delta_link: str | None = field(repr=False)
    sync_window_start: datetime | None
    sync_window_end: datetime | None
    calendar_active: bool
    last_page_checks: bool
    pending_deletes: bool
    empty_at_start: bool

    def __post_init__(self) -> None:
        object.__setattr__(self, "calendar_type", Provider(self.calendar_type))


def run_context(conn: Conn, run_id: int) -> RunContext | None:
    """A run joined with its calendar, its tokens opened (sealed in place when still plaintext)."""
    with conn.cursor(row_factory=class_row(RunContext)) as cur:
        run = cur.execute(RUN_CONTEXT, {"run_id": run_id}).fetchone()
    if run is None:
        return None
    token, refresh = tokens_sql.opened(conn, run.calendar_id, run.token, run.refresh_token)
    return replace(run, token=token, refresh_token=refresh)


def touch(conn: Conn, run_id: int, step: str, requests: int = 0) -> None:
    """Record the step a run is in, a heartbeat and the provider requests just made."""
    conn.execute(TOUCH_RUN, {"run_id": run_id, "step": step, "requests": requests})


def stage_page(conn: Conn, run_id: int, body: dict[str, Any], next_cursor: str | None,
               final: bool) -> int | None:
    """Stage a fetched page; returns its id (None if this page number was already staged)."""
    row = conn.execute(STAGE_PAGE, {"run_id": run_id, "body": page_json(body), "next": next_cursor,
                                    "final": final}).fetchone()
    if row is None:
        return None
    conn.execute(BUMP_PAGES, {"run_id": run_id, "n": 1})
    return int(row["pageId"])


def record_series_listed(conn: Conn, run_id: int, listed: dict[str, dict[str, Any]]) -> None:
    """Record what a page of a full Outlook round listed of each series (an item JSON cannot hold is
    kept as page_json's stand-in, which the normalizer turns into a recorded skip)."""
    with conn.cursor() as cur, cur.copy(RECORD_SERIES_LISTED) as copy:
        for master_id, entry in listed.items():
            copy.write_row((run_id, master_id, page_json(entry)))


def series_masters(conn: Conn, run_id: int) -> list[str]:
    """The series the pages of a full Outlook round recorded something of (in no order)."""
    return [r["masterId"] for r in conn.execute(SERIES_MASTERS, {"run_id": run_id}).fetchall()]


def series_listed(conn: Conn, run_id: int, masters: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """What the pages of a full Outlook round recorded of these series, per series."""
    out: dict[str, list[dict[str, Any]]] = {}
    for row in conn.execute(SERIES_LISTED, {"run_id": run_id, "m": list(masters)}).fetchall():
        out.setdefault(row["masterId"], []).append(row["listed"])
    return out


def claim_cursor(conn: Conn, run_id: int, cursor: str | None) -> bool:
    """Lock an open run that is still at ``cursor`` (False: finished, or another delivery moved it)."""
    return conn.execute(CLAIM_CURSOR, {"run_id": run_id, "cursor": cursor}).fetchone() is not None


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def page_json(body: dict[str, Any]) -> str:
    """A fetched page as JSON text for jsonb; one provider item that cannot be stored never fails the page.

    Such an item (nested deeper than orjson allows, an integer beyond 64 bits, …) is staged as a stand-in
    ``{"id": …, UNSTAGED: reason}`` that the normalizers turn into a recorded skip. Lone UTF-16
    surrogates (Graph's 255-character bodyPreview can split an emoji) become U+FFFD instead.
    """
    from autosync.store.events import strip_nul

    try:
        return strip_nul(orjson.dumps(body).decode())  # the usual case; jsonb cannot hold NUL
    except TypeError:  # orjson.JSONEncodeError
        pass
    parts = []
    for key, value in body.items():
        if key == "items" and isinstance(value, list):
            text = "[" + ",".join(_item_json(item) for item in value) + "]"
        else:
            text = _lenient_json(key, value)
        parts.append(orjson.dumps(_scrub(str(key))).decode() + ":" + text)
    return strip_nul("{" + ",".join(parts) + "}")


def _json(value: Any) -> tuple[str | None, str]:
    """(JSON text or None, why not): orjson first, then with lone surrogates replaced."""
    try:
        return orjson.dumps(value).decode(), ""
    except TypeError as exc:
        error = str(exc)
    if "surrogates" in error:
        try:  # the stdlib encoder keeps lone surrogates as characters, so they can be replaced
            text = _LONE_SURROGATE.sub("\ufffd", json.dumps(value, ensure_ascii=False, allow_nan=False))
            return orjson.dumps(json.loads(text)).decode(), ""  # the same encoder as the fast path
        except (TypeError, ValueError, RecursionError) as exc:
            error = str(exc)
    if nesting(value) > MAX_NESTING:
        return None, f"nested more than {MAX_NESTING} levels deep"
    return None, error


def _item_json(item: Any) -> str:
    text, error = _json(item)
    if text is not None:
        return text
    ext_id = item.get("id") if isinstance(item, dict) else None
    ext_id = _scrub(ext_id) if isinstance(ext_id, str) else ""
    log.warning("provider item cannot be staged", extra={"event": ext_id, "reason": error})
    return orjson.dumps({"id": ext_id, UNSTAGED: f"provider item cannot be staged: {error}"}).decode()


def _lenient_json(key: str, value: Any) -> str:
    """Page metadata: an object keeps the members that can be stored; anything else unusable is null."""
    text, error = _json(value)
    if text is not None:
        return text
    if isinstance(value, dict):
        return "{" + ",".join(orjson.dumps(_scrub(str(k))).decode() + ":" + _lenient_json(k, v)
                              for k, v in value.items()) + "}"
    log.warning("page metadata dropped", extra={"key": key, "reason": error})
    return "null"


def _scrub(text: str) -> str:
    return _LONE_SURROGATE.sub("\ufffd", text)


def nesting(value: Any) -> int:
    """How many arrays/objects deep a JSON value goes (iterative: a hostile value cannot overflow the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def record_skips(conn: Conn, run_id: int, calendar_id: int, skipped: Sequence[Skipped]) -> None:
    """Record malformed provider items with their id and reason."""
    if skipped:
        conn.execute(RECORD_SKIPS, {"run_id": run_id, "calendar_id": calendar_id,
                                    "ids": [s.ext_id for s in skipped], "reasons": [s.reason for s in skipped]})


def commit_cursor(conn: Conn, calendar_id: int, cursor: str,
                  window: tuple[datetime | None, datetime | None]) -> None:
    """Store the provider's cursor verbatim, with the window it covers."""
    conn.execute(COMMIT_CURSOR, {"calendar_id": calendar_id, "cursor": cursor,
                                 "window_start": window[0], "window_end": window[1]})


def notify(conn: Conn, user_id: int, kind: str, payload: dict[str, Any]) -> None:
    """Queue a user-level notification for the sender."""
    conn.execute(NOTIFY, {"user_id": user_id, "kind": kind, "payload": json.dumps(payload, default=str)})

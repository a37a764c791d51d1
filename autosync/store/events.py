"""SQL for cal_event writes by the importer: COPY into a staging table, then one merge statement."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

import orjson
import psycopg

from autosync.model import Event, Skipped
from autosync.store.db import Conn

# Columns the importer owns, in COPY order.
COLUMNS = (
    "extEventId", "eventName", "description", "location", "startDate", "endDate", "startTime",
    "endTime", "linkAllDay", "status", "recurrence", "recurringEventId", "originalStartDate",
    "originalStartTime", "organizerName", "organizerEmail", "conferenceType", "conferenceUri",
    "conferenceData", "htmlLink", "hangoutLink", "startTimeZone", "endTimeZone", "attendees",
    "attachments", "reminders", "remindersUseDefault", "eventStatus", "eventType", "excludedDates",
    "removeChildInstances", "removeCancelledInstances", "extUpdatedAt", "extEtag", "providerData",
    "contentHash",
)
_TYPES = (
    "text", "text", "text", "text", "date", "date", "time", "time", "boolean", "boolean", "text[]",
    "text", "date", "time", "text", "text", "text", "text", "jsonb", "text", "text", "text", "text",
    "jsonb", "jsonb", "jsonb", "boolean", "text", "text", "date[]", "boolean", "boolean",
    "timestamptz", "text", "jsonb", "text",
)

_q = ", ".join(f'"{c}"' for c in COLUMNS)
CREATE_STAGING = (
    "CREATE TEMP TABLE IF NOT EXISTS import_rows ("
    + ", ".join(f'"{c}" {t}' for c, t in zip(COLUMNS, _TYPES, strict=True))
    + ") ON COMMIT DELETE ROWS"
)
COPY_STAGING = f"COPY import_rows ({_q}) FROM STDIN"
MERGE = (
    f'INSERT INTO cal_event ("calendarId", "createdBy", "syncedAt", {_q}) '
    f"SELECT %(calendar_id)s, %(user_id)s, now(), {_q} FROM import_rows "
    'ON CONFLICT ("calendarId", "extEventId") DO UPDATE SET '
    + ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in COLUMNS if c != "extEventId")
    + ', "syncedAt" = now() '
    'WHERE cal_event."contentHash" IS DISTINCT FROM EXCLUDED."contentHash" '
    "   OR cal_event.status IS DISTINCT FROM EXCLUDED.status "
    "RETURNING (xmax = 0) AS inserted"
)
# A full listing of a calendar that held no live provider rows when it began inserts new rows only:
# they go straight into cal_event, with no staging table and no merge (a sixth less time on the write
# path: BENCHMARKS.md, "Phase 5"). "syncedAt" is the transaction's now(), as the merge writes it. A
# row that does exist after all (a dead row of a calendar linked again, an event listed on two pages)
# fails the COPY with a unique violation, and the page takes the merge (``Upserted.merged_instead``).
COPY_FRESH = f'COPY cal_event ("calendarId", "createdBy", "syncedAt", {_q}) FROM STDIN'
# Cancelled occurrences: keep whatever the row knew, mark it cancelled (insert if new).
CANCEL_INSTANCES = (
    'INSERT INTO cal_event ("calendarId", "createdBy", "syncedAt", "extEventId", "recurringEventId", '
    '"originalStartDate", "originalStartTime", status, "eventStatus", "extEtag", "contentHash", '
    '"providerData") '
    "SELECT %(calendar_id)s, %(user_id)s, now(), x.ext, x.master, x.odate, x.otime, false, 'cancelled', "
    "x.etag, x.hash, x.raw::jsonb "
    "FROM unnest(%(ext)s::text[], %(master)s::text[], %(odate)s::date[], %(otime)s::time[], "
    "%(etag)s::text[], %(hash)s::text[], %(raw)s::text[]) AS x(ext, master, odate, otime, etag, hash, raw) "
    'ON CONFLICT ("calendarId", "extEventId") DO UPDATE SET status = false, "eventStatus" = \'cancelled\', '
    '"extEtag" = EXCLUDED."extEtag", "contentHash" = EXCLUDED."contentHash", "syncedAt" = now(), '
    '"recurringEventId" = coalesce(EXCLUDED."recurringEventId", cal_event."recurringEventId"), '
    '"originalStartDate" = coalesce(EXCLUDED."originalStartDate", cal_event."originalStartDate"), '
    '"originalStartTime" = coalesce(EXCLUDED."originalStartTime", cal_event."originalStartTime") '
    "WHERE cal_event.status OR cal_event.\"contentHash\" IS DISTINCT FROM EXCLUDED.\"contentHash\" "
    "RETURNING (xmax = 0) AS inserted"
)
# Deleted events (and, for a deleted series master, all of its instances).
DELETE_EVENTS = (
    "UPDATE cal_event SET status = false, \"eventStatus\" = 'cancelled', \"syncedAt\" = now() "
    'WHERE "calendarId" = %(calendar_id)s AND status '
    'AND ("extEventId" = ANY(%(ext)s) OR "recurringEventId" = ANY(%(ext)s))'
)
COUNT_DELETABLE = (
    'SELECT count(*) AS n FROM cal_event WHERE "calendarId" = %(calendar_id)s AND status '
    'AND ("extEventId" = ANY(%(ext)s) OR "recurringEventId" = ANY(%(ext)s))'
)
# Live instances of one series that are not among ``keep`` (the series' current exceptions).
STALE_INSTANCES = (
    'SELECT "extEventId" FROM cal_event WHERE "calendarId" = %(c)s AND status '
    'AND "recurringEventId" = %(m)s AND NOT ("extEventId" = ANY(%(k)s))'
)
# Deletions a run's pages found, applied on its last page once the guard decided on the run's total.
PEND_DELETES = (
    'INSERT INTO sync_pending_delete ("runId", "extEventId") SELECT %(run_id)s, unnest(%(ext)s::text[]) '
    "ON CONFLICT DO NOTHING"
)
UNPEND_DELETES = 'DELETE FROM sync_pending_delete WHERE "runId" = %(run_id)s AND "extEventId" = ANY(%(ext)s)'
TAKE_PENDING_DELETES = 'DELETE FROM sync_pending_delete WHERE "runId" = %(run_id)s RETURNING "extEventId"'
COUNT_LIVE = 'SELECT count(*) AS n FROM cal_event WHERE "calendarId" = %(calendar_id)s AND status'
RECORD_SEEN = 'COPY sync_seen ("runId", "extEventId") FROM STDIN'
# An Outlook page staged for import (as LOAD_PAGE) with what the pull needs to know from the store, in
# one statement so an import costs no more round trips than before:
# - series: per series master the page lists or names (and, on the last page, per master a change
#   notification named: series_hint), whether this run checked it on an earlier page (recorded as
#   seen) and its stored exclusions;
# - removed_stored: the page's @removed ids that are live rows here (the others were never stored);
# - live_series: on the last page of a round in which some @removed id was not one of ours (an
#   occurrence, say: earlier pages record FOREIGN_REMOVALS as seen), our live series masters, so a
#   series whose master no round lists is noticed when it is deleted.
FOREIGN_REMOVALS = "#foreign-removals"  # never an event id: Graph ids have no '#'
LOAD_OUTLOOK_PAGE = (
    'WITH p AS (SELECT * FROM sync_page WHERE "pageId" = %(page_id)s AND "runId" = %(run_id)s FOR UPDATE), '
    "items AS (SELECT i FROM p, jsonb_array_elements(p.body->'items') i WHERE jsonb_typeof(i) = 'object'), "
    'hinted AS (SELECT h."extEventId" AS id FROM series_hint h, p WHERE p."isFinal" AND h."calendarId" = %(c)s), '
    "named AS (SELECT coalesce(i->>'seriesMasterId', CASE WHEN i->>'type' = 'seriesMaster' THEN i->>'id' END) "
    "AS id FROM items WHERE NOT i ? '@removed' UNION SELECT id FROM hinted), "
    "removed AS (SELECT i->>'id' AS id, EXISTS (SELECT 1 FROM cal_event e WHERE e.\"calendarId\" = %(c)s "
    "AND e.status AND e.\"extEventId\" = i->>'id') AS stored FROM items WHERE i ? '@removed') "
    'SELECT p.*, ARRAY(SELECT id FROM hinted ORDER BY id) AS hinted, '
    '(SELECT coalesce(jsonb_object_agg(n.id, jsonb_build_array(EXISTS (SELECT 1 FROM sync_seen s '
    'WHERE s."runId" = %(run_id)s AND s."extEventId" = n.id), to_jsonb(e."excludedDates"))), \'{}\'::jsonb) '
    'FROM named n LEFT JOIN cal_event e ON e."calendarId" = %(c)s AND e.status AND e."extEventId" = n.id '
    'WHERE n.id IS NOT NULL) AS series, ARRAY(SELECT id FROM removed WHERE stored) AS removed_stored, '
    'CASE WHEN p."isFinal" AND (EXISTS (SELECT 1 FROM removed WHERE NOT stored) OR EXISTS (SELECT 1 '
    'FROM sync_seen s WHERE s."runId" = %(run_id)s AND s."extEventId" = %(foreign)s)) THEN ARRAY(SELECT '
    'e."extEventId" FROM cal_event e WHERE e."calendarId" = %(c)s AND e.status AND e.recurrence IS NOT NULL '
    'AND e."recurringEventId" IS NULL ORDER BY 1) END AS live_series FROM p'
)
# The same store state as LOAD_OUTLOOK_PAGE for a page that was not staged (a full run's pipelined
# step, services.initial): the page's named series and @removed ids come from the fetched items.
OUTLOOK_STATE = (
    'WITH hinted AS (SELECT h."extEventId" AS id FROM series_hint h WHERE %(final)s AND h."calendarId" = %(c)s), '
    "named AS (SELECT unnest(%(named)s::text[]) AS id UNION SELECT id FROM hinted), "
    "removed AS (SELECT r.id, EXISTS (SELECT 1 FROM cal_event e WHERE e.\"calendarId\" = %(c)s "
    "AND e.status AND e.\"extEventId\" = r.id) AS stored FROM unnest(%(removed)s::text[]) r(id)) "
    'SELECT ARRAY(SELECT id FROM hinted ORDER BY id) AS hinted, '
    '(SELECT coalesce(jsonb_object_agg(n.id, jsonb_build_array(EXISTS (SELECT 1 FROM sync_seen s '
    'WHERE s."runId" = %(run_id)s AND s."extEventId" = n.id), to_jsonb(e."excludedDates"))), \'{}\'::jsonb) '
    'FROM named n LEFT JOIN cal_event e ON e."calendarId" = %(c)s AND e.status AND e."extEventId" = n.id '
    'WHERE n.id IS NOT NULL) AS series, ARRAY(SELECT id FROM removed WHERE stored) AS removed_stored, '
    'CASE WHEN %(final)s AND (EXISTS (SELECT 1 FROM removed WHERE NOT stored) OR EXISTS (SELECT 1 '
    'FROM sync_seen s WHERE s."runId" = %(run_id)s AND s."extEventId" = %(foreign)s)) THEN ARRAY(SELECT '
    'e."extEventId" FROM cal_event e WHERE e."calendarId" = %(c)s AND e.status AND e.recurrence IS NOT NULL '
    'AND e."recurringEventId" IS NULL ORDER BY 1) END AS live_series'
)
UNSEEN = (
    'SELECT e."extEventId" FROM cal_event e WHERE e."calendarId" = %(calendar_id)s AND e.status '
    'AND e."extEventId" IS NOT NULL AND coalesce(e."endDate", e."startDate") >= %(since)s '
    'AND NOT EXISTS (SELECT 1 FROM sync_seen s WHERE s."runId" = %(run_id)s '
    'AND s."extEventId" = e."extEventId")'
)


def _date_time(moment: date | datetime | None) -> tuple[date | None, time | None]:
    if moment is None:
        return None, None
    if isinstance(moment, datetime):
        utc = moment.astimezone(UTC)
        return utc.date(), utc.time().replace(tzinfo=None)
    return moment, None


def _j(value: Any) -> str:
    # orjson: the import path serializes every provider item once more for "providerData"; the
    # stdlib encoder made that half of the time spent converting an event into a row.
    return orjson.dumps(value, default=str).decode()


def provider_json(raw: dict[str, Any] | None) -> str | None:
    """The providerData value of a provider item; raises TypeError for one JSON cannot hold (nested
    beyond orjson's 254 levels, an integer beyond 64 bits, a lone surrogate): staging turns such
    items from listings into skips, this catches those fetched one by one (series masters, instances)."""
    if raw is None:
        return None
    try:
        return _j(raw)
    except TypeError as exc:  # orjson.JSONEncodeError
        raise TypeError(f"provider item cannot be stored as JSON: {exc}") from None


def attendees_json(event: Event) -> str:
    """The attendees column value of an event."""
    return _j([{"email": a.email, "name": a.name, "status": a.status, "optional": a.optional,
                "resource": a.resource, "organizer": a.organizer} for a in event.attendees])


def _attachments(event: Event) -> str:
    return _j([{"title": a.title, "url": a.url, "mime_type": a.mime_type, "file_id": a.file_id, "size": a.size}
               for a in event.attachments])


def _reminders(event: Event) -> str:
    return _j([{"method": r.method, "minutes": r.minutes} for r in event.reminders])


def row_of(event: Event) -> tuple[Any, ...]:
    """The cal_event column values for one normalized event (storage rule in migration 0001)."""
    start_d, start_t = _date_time(event.start)
    end_d, end_t = _date_time(event.end)
    orig_d, orig_t = _date_time(event.original_start)
    org = event.organizer
    conf = event.conference
    return (
        event.ext_id, event.summary, event.description, event.location, start_d, end_d, start_t, end_t,
        event.all_day, not event.cancelled, list(event.recurrence) or None, event.recurring_event_id,
        orig_d, orig_t, org.name if org else None, org.email if org else None,
        conf.type if conf else None, conf.uri if conf else None,
        conf.data_json if conf and conf.data_json else None, event.html_link or None,
        event.hangout_link or None, event.start_tz, event.end_tz,
        attendees_json(event) if event.attendees else "[]", _attachments(event) if event.attachments else "[]",
        _reminders(event) if event.reminders else "[]", event.reminders_use_default, event.status,
        event.event_type, list(event.excluded_dates) or None, event.remove_child_instances,
        event.remove_cancelled_instances, event.updated, event.etag, provider_json(event.raw), event.content_hash(),
    )


# A JSON NUL escape (backslash u0000) that is not an escaped backslash followed by "u0000".
_JSON_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def strip_nul(text: str) -> str:
    """PostgreSQL text and jsonb cannot hold NUL: drop raw NULs and JSON NUL escapes."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    return _JSON_NUL.sub(r"\1", text) if "\\u0000" in text else text


def _clean(value: Any) -> Any:
    # One stray NUL from a provider must not fail a whole page.
    return strip_nul(value) if isinstance(value, str) else value


_RAW = COLUMNS.index("providerData")


@dataclass
class Upserted:
    """What a merge did: rows inserted, updated, unchanged, and events that could not be stored."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    merged_instead: bool = False  # asked for the fresh COPY, which met an existing row


@dataclass(frozen=True)
class Encoded:
    """Rows built before the transaction that writes them (``encode``), by event id.

    A row is used only for the very event object it was built from: whatever replaced or dropped an
    event in between (the conflict check) simply gets its row built at write time.
    """

    rows: dict[str, tuple[Event, tuple[Any, ...] | str]] = field(default_factory=dict)


def _encoded(event: Event) -> tuple[Any, ...] | str:
    """The COPY row of one event, or why it cannot be stored."""
    try:
        row = row_of(event)
    except (TypeError, ValueError, OverflowError) as exc:
        return f"cannot be stored: {exc}"
    raw = row[_RAW]
    # Every text column derives from the provider item, so one look at its JSON finds any NUL.
    return tuple(_clean(v) for v in row) if raw is not None and "\\u0000" in raw else row


def encode(events: Sequence[Event]) -> Encoded:
    """Build the rows of ``events`` ahead of their write: pure Python, no connection needed, so it can
    run while another thread waits for PostgreSQL (services.initial reads ahead this way)."""
    return Encoded({e.ext_id: (e, _encoded(e)) for e in events})


def _storable(events: Sequence[Event], skipped: list[Skipped],
              encoded: Encoded | None = None) -> Iterator[tuple[Any, ...]]:
    """Rows for COPY, built while COPY streams (psycopg sends in the background, so the two overlap)."""
    ready = encoded.rows if encoded is not None else {}
    for event in events:
        built = ready.get(event.ext_id)
        row = built[1] if built is not None and built[0] is event else _encoded(event)
        if isinstance(row, str):
            skipped.append(Skipped(event.ext_id, row))
            continue
        yield row


def upsert(conn: Conn, calendar_id: int, user_id: int, events: Sequence[Event],
           encoded: Encoded | None = None, *, fresh: bool = False) -> Upserted:
    """Merge live events in one COPY + one statement. Unchanged rows are not written; an event that
    cannot be stored is reported in ``skipped`` instead of failing the page. ``encoded``: rows built
    ahead (``encode``) for some or all of the events. ``fresh``: the rows are expected to be new
    (COPY_FRESH); the merge is the fallback when one is not."""
    if not events:
        return Upserted()
    if fresh:
        inserted = _insert_fresh(conn, calendar_id, user_id, events, encoded)
        if inserted is not None:
            return inserted
    result = Upserted(merged_instead=fresh)
    conn.execute(CREATE_STAGING)
    with conn.cursor() as cur:
        with cur.copy(COPY_STAGING) as copy:
            for row in _storable(events, result.skipped, encoded):
                copy.write_row(row)
        cur.execute(MERGE, {"calendar_id": calendar_id, "user_id": user_id})
        flags = [r["inserted"] for r in cur.fetchall()]
        cur.execute("TRUNCATE import_rows")
    result.inserted = sum(1 for f in flags if f)
    result.updated = len(flags) - result.inserted
    result.unchanged = len(events) - len(result.skipped) - len(flags)
    return result


def _insert_fresh(conn: Conn, calendar_id: int, user_id: int, events: Sequence[Event],
                  encoded: Encoded | None) -> Upserted | None:
    """COPY_FRESH inside a savepoint; None (and nothing written) when some row already exists."""
    result = Upserted()
    now = conn.execute("SELECT now() AS now").fetchone()
    assert now is not None
    head = (calendar_id, user_id, now["now"])
    try:
        with conn.transaction(), conn.cursor() as cur, cur.copy(COPY_FRESH) as copy:
            for row in _storable(events, result.skipped, encoded):
                copy.write_row(head + row)
    except psycopg.errors.UniqueViolation:
        return None
    result.inserted = len(events) - len(result.skipped)
    return result


def cancel_instances(conn: Conn, calendar_id: int, user_id: int,
                     events: Sequence[Event]) -> int:
    """Record cancelled occurrences of live series; returns rows written."""
    if not events:
        return 0
    cols: dict[str, list[Any]] = {k: [] for k in ("ext", "master", "odate", "otime", "etag", "hash", "raw")}
    for e in events:
        d, t = _date_time(e.original_start)
        cols["ext"].append(e.ext_id)
        cols["master"].append(e.recurring_event_id)
        cols["odate"].append(d)
        cols["otime"].append(t)
        cols["etag"].append(e.etag)
        cols["hash"].append(e.content_hash())
        try:
            cols["raw"].append(provider_json(e.raw))
        except TypeError:  # a tombstone needs no provider copy; the cancellation itself must land
            cols["raw"].append(None)
    rows = conn.execute(CANCEL_INSTANCES, {"calendar_id": calendar_id, "user_id": user_id, **cols}).fetchall()
    return len(rows)


def count_deletable(conn: Conn, calendar_id: int, ext_ids: Sequence[str]) -> int:
    """How many live rows deleting these ids would remove."""
    if not ext_ids:
        return 0
    row = conn.execute(COUNT_DELETABLE, {"calendar_id": calendar_id, "ext": list(ext_ids)}).fetchone()
    return int(row["n"]) if row else 0


def count_live(conn: Conn, calendar_id: int) -> int:
    """Live events of a calendar."""
    row = conn.execute(COUNT_LIVE, {"calendar_id": calendar_id}).fetchone()
    return int(row["n"]) if row else 0


def delete(conn: Conn, calendar_id: int, ext_ids: Sequence[str]) -> int:
    """Mark events (and instances of deleted series) deleted; returns rows changed."""
    if not ext_ids:
        return 0
    return conn.execute(DELETE_EVENTS, {"calendar_id": calendar_id, "ext": list(ext_ids)}).rowcount


def stale_instances(conn: Conn, calendar_id: int, master_id: str, keep: Sequence[str]) -> list[str]:
    """Live instance rows of a series that its provider no longer lists."""
    rows = conn.execute(STALE_INSTANCES, {"c": calendar_id, "m": master_id, "k": list(keep)}).fetchall()
    return [r["extEventId"] for r in rows]


def record_seen(conn: Conn, run_id: int, ext_ids: Iterable[str]) -> None:
    """Remember the ids a full-sync run listed."""
    with conn.cursor() as cur, cur.copy(RECORD_SEEN) as copy:
        for ext in ext_ids:
            copy.write_row((run_id, ext))


def load_outlook_page(conn: Conn, calendar_id: int, run_id: int, page_id: int) -> dict[str, Any] | None:
    """A staged Outlook page (locked) with ``hinted``, ``series`` (id -> (checked, stored exclusions)),
    ``removed_stored`` and ``live_series`` (None unless needed): see LOAD_OUTLOOK_PAGE."""
    row = conn.execute(LOAD_OUTLOOK_PAGE, {"c": calendar_id, "run_id": run_id, "page_id": page_id,
                                           "foreign": FOREIGN_REMOVALS}).fetchone()
    if row is None:
        return None
    series = {ext: (bool(done), [date.fromisoformat(d) for d in days or []])
              for ext, (done, days) in (row["series"] or {}).items()}
    return {**row, "series": series, "hinted": list(row["hinted"] or []),
            "removed_stored": list(row["removed_stored"] or [])}


def outlook_state(conn: Conn, calendar_id: int, run_id: int, named: Sequence[str], removed: Sequence[str],
                  final: bool) -> dict[str, Any]:
    """What load_outlook_page adds to a staged page, for a page held in memory: ``named`` are the series
    masters its items list or name, ``removed`` its @removed ids, ``final`` whether it ends the round."""
    row = conn.execute(OUTLOOK_STATE, {"c": calendar_id, "run_id": run_id, "named": list(named),
                                       "removed": list(removed), "final": final,
                                       "foreign": FOREIGN_REMOVALS}).fetchone()
    assert row is not None  # an aggregate query always answers one row
    series = {ext: (bool(done), [date.fromisoformat(d) for d in days or []])
              for ext, (done, days) in (row["series"] or {}).items()}
    return {"series": series, "hinted": list(row["hinted"] or []),
            "removed_stored": list(row["removed_stored"] or []), "live_series": row["live_series"]}


def unseen(conn: Conn, calendar_id: int, run_id: int, since: date) -> list[str]:
    """Live events in the window that a full-sync run did not list."""
    rows = conn.execute(UNSEEN, {"calendar_id": calendar_id, "run_id": run_id, "since": since}).fetchall()
    return [r["extEventId"] for r in rows]


def pend_deletes(conn: Conn, run_id: int, ext_ids: Sequence[str]) -> None:
    """Record deletions a page found; the run's last page applies them (or the guard refuses them all)."""
    if ext_ids:
        conn.execute(PEND_DELETES, {"run_id": run_id, "ext": list(ext_ids)})


def unpend_deletes(conn: Conn, run_id: int, ext_ids: Sequence[str]) -> None:
    """A later page lists these events live again: their earlier deletion no longer stands."""
    if ext_ids:
        conn.execute(UNPEND_DELETES, {"run_id": run_id, "ext": list(ext_ids)})


def take_pending_deletes(conn: Conn, run_id: int) -> list[str]:
    """The deletions a run's earlier pages found (removed from the record: applied or refused now)."""
    return [r["extEventId"] for r in conn.execute(TAKE_PENDING_DELETES, {"run_id": run_id}).fetchall()]

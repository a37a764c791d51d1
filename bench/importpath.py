"""The import path alone: autosync.store.events.upsert vs a raw COPY + INSERT … ON CONFLICT of the same rows."""

from __future__ import annotations

import random
import statistics
import time
from datetime import UTC, datetime
from typing import Any

import orjson

from autosync.emulator.generator import generate_google_events
from autosync.model import Event
from autosync.normalize.google import page_from_google
from autosync.store import events as ev_sql
from autosync.store.db import Conn, transaction

RAW_STAGING = ev_sql.CREATE_STAGING.replace("import_rows", "raw_rows")
RAW_COPY = ev_sql.COPY_STAGING.replace("import_rows", "raw_rows")
_q = ", ".join(f'"{c}"' for c in ev_sql.COLUMNS)
_sets = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in ev_sql.COLUMNS if c != "extEventId")
# Composed once from the constant column list (joined, not formatted); values are always bound.
RAW_MERGE = " ".join([
    'INSERT INTO cal_event ("calendarId", "createdBy", "syncedAt",', _q, ") SELECT %(calendar_id)s, %(user_id)s,",
    "now(),", _q, 'FROM raw_rows ON CONFLICT ("calendarId", "extEventId") DO UPDATE SET', _sets,
    ', "syncedAt" = now()',
])


def live_events(n: int, seed: int = 5) -> list[Event]:
    """Normalized live events from the generator (what an import page hands to upsert)."""
    items = generate_google_events(random.Random(seed), n, now=datetime.now(UTC))
    events, skipped = page_from_google(items)
    assert not skipped, skipped[:3]
    return [e for e in events if not e.cancelled][:n]


def raw_upsert(conn: Conn, calendar_id: int, user_id: int, rows: list[tuple[Any, ...]]) -> None:
    """The floor: COPY precomputed column tuples, one INSERT … ON CONFLICT DO UPDATE, nothing else.

    Its staging table is created the same way as autosync's (temp, ON COMMIT DELETE ROWS, reused).
    """
    conn.execute(RAW_STAGING)
    with conn.cursor() as cur:
        with cur.copy(RAW_COPY) as copy:
            for row in rows:
                copy.write_row(row)
        cur.execute(RAW_MERGE, {"calendar_id": calendar_id, "user_id": user_id})


def _calendars(count: int, email: str = "import@bench.example") -> tuple[int, list[int]]:
    with transaction() as conn:
        user = conn.execute('INSERT INTO user_main (email, "firstName") VALUES (%s, %s) RETURNING "userId"',
                            (email, "import")).fetchone()
        assert user is not None
        ids = conn.execute('INSERT INTO calendar ("userId", "calendarType", "extCalendarId", status) '
                           "SELECT %s, 1, 'import-' || g, true FROM generate_series(1, %s) g "
                           'RETURNING "calendarId"', (user["userId"], count)).fetchall()
    return int(user["userId"]), [int(r["calendarId"]) for r in ids]


def _timed(fn: Any, *args: Any) -> float:
    started = time.perf_counter()
    with transaction() as conn:
        fn(conn, *args)
    return time.perf_counter() - started


def import_path(n: int, repeats: int) -> dict[str, Any]:
    """Median events/s of both paths over ``repeats`` alternating rounds, each into a fresh calendar."""
    events = live_events(n)
    user_id, cals = _calendars(2 * repeats + 2)
    # Warm-up (temp tables created, caches primed), not counted.
    _timed(ev_sql.upsert, cals[-1], user_id, events[:200])
    _timed(raw_upsert, cals[-2], user_id, [ev_sql.row_of(e) for e in events[:200]])
    started = time.perf_counter()
    rows = [ev_sql.row_of(e) for e in events]
    convert = time.perf_counter() - started
    product: list[float] = []
    raw: list[float] = []
    product_again: list[float] = []
    raw_again: list[float] = []
    for r in range(repeats):
        a, b = cals[2 * r], cals[2 * r + 1]
        first = [(product, a, "product"), (raw, b, "raw")]
        for times, cal, kind in (first if r % 2 == 0 else first[::-1]):
            fn = ev_sql.upsert if kind == "product" else raw_upsert
            times.append(_timed(fn, cal, user_id, events if kind == "product" else rows))
        # Re-importing the same rows: autosync skips unchanged rows, the raw merge rewrites them.
        product_again.append(_timed(ev_sql.upsert, a, user_id, events))
        raw_again.append(_timed(raw_upsert, b, user_id, rows))
    med = statistics.median
    return {
        "events": len(events), "repeats": repeats,
        "autosync_upsert_events_per_s": round(len(events) / med(product)),
        "raw_copy_upsert_events_per_s": round(len(events) / med(raw)),
        "efficiency": round(med(raw) / med(product), 3),
        "row_conversion_share_of_upsert": round(convert / med(product), 3),
        "reimport_unchanged_autosync_events_per_s": round(len(events) / med(product_again)),
        "reimport_unchanged_raw_events_per_s": round(len(events) / med(raw_again)),
    }


def own_rows(provider: str, calendar_id: int, limit: int = 10000, repeats: int = 3) -> dict[str, Any]:
    """The import path for the rows a large calendar's sync just wrote (``calendar_id``): its provider
    items as stored (``providerData`` of its live rows), normalized again and upserted in one transaction
    into fresh calendars; median events/s. The generated import path above uses Google items; a Graph
    item is about three times the JSON, and this says what storing the calendar's own rows costs."""
    from autosync.normalize.outlook import event_from_graph

    with transaction() as conn:
        raws = [r["providerData"] for r in conn.execute(
            'SELECT "providerData" FROM cal_event WHERE "calendarId" = %s AND status AND "providerData" IS NOT NULL '
            'ORDER BY "eventId" LIMIT %s', (calendar_id, limit)).fetchall()]
    if provider == "google":
        events, _ = page_from_google(raws)
    else:
        events = [event_from_graph(raw) for raw in raws]
    events = [e for e in events if not e.cancelled]
    user_id, cals = _calendars(repeats + 1, email=f"own-rows-{calendar_id}@bench.example")
    _timed(ev_sql.upsert, cals[-1], user_id, events[:200])  # warm-up, not counted
    times = [_timed(ev_sql.upsert, cals[r], user_id, events) for r in range(repeats)]
    return {"events": len(events), "repeats": repeats,
            "events_per_s": round(len(events) / statistics.median(times)),
            "avg_provider_json_bytes": round(sum(len(orjson.dumps(e.raw)) for e in events) / max(1, len(events)))}

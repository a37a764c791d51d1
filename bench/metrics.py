"""Metrics costs: one scrape of `autosync metrics` at 100k calendars, and what recording costs a task.

The database is seeded directly in SQL with a production-like mix (states, lag, tokens and cursors of
real length, watched calendars, a push backlog, run history); the endpoint is served by the real
MetricsServer and scraped over HTTP. Recording is timed through the functions the hooks call.
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import requests
from prometheus_client.parser import text_string_to_metric_families
from psycopg import sql as psql

# 20 % Outlook; per 1,000: 950 synced (lag up to 10 min), 20 failing, 10 needing re-auth, 5 blocked,
# 10 switched off, 5 never synced. Half the Google calendars are watched (a channel each), and every
# Outlook mailbox has a subscription; a few channels are expired, and each Google one was replaced three
# times before (a week of history: stopped rows).
SEED = """
INSERT INTO user_main ("userId", email) SELECT u, 'user' || u || '@example.com' FROM generate_series(1, %(users)s) u;
INSERT INTO calendar ("calendarId", "userId", "calendarType", "extCalendarId", "socialAccountId", token,
    "refreshToken", "accessTokenExpirationDate", "lastSyncDate", "deltaLink", status, "needsReauth",
    "lastOutcome", "watchError", "createdAt")
SELECT i, 1 + (i - 1) / 5, CASE WHEN i %% 5 = 0 THEN 2 ELSE 1 END, 'cal-' || i || '@group.calendar.google.com',
    'acct-' || (1 + (i - 1) / 5), repeat('a', 180), repeat('r', 100), now() + interval '50 minutes',
    CASE WHEN i %% 1000 BETWEEN 995 AND 999 THEN NULL
         ELSE (now() AT TIME ZONE 'UTC') - make_interval(secs => (i * 7919) %% 600) END,
    CASE WHEN i %% 5 = 0 THEN 'https://graph.microsoft.com/v1.0/me/calendars/x/calendarView/delta?$deltatoken='
         || repeat('d', 900) ELSE repeat('s', 40) END,
    i %% 1000 NOT BETWEEN 985 AND 994,
    i %% 1000 BETWEEN 970 AND 979,
    CASE WHEN i %% 1000 BETWEEN 950 AND 969 THEN 'failed' WHEN i %% 1000 BETWEEN 980 AND 984 THEN 'blocked'
         WHEN i %% 1000 BETWEEN 995 AND 999 THEN NULL ELSE 'ok' END,
    CASE WHEN i %% 997 = 0 THEN 'Permanent 400 pushNotSupportedForRequestedResource' END,
    now() - interval '30 days'
FROM generate_series(1, %(n)s) i;
INSERT INTO push_channel ("channelId", "calendarType", "userId", "socialAccountId", "calendarId", "secretHash",
    "expiresAt")
SELECT 'g-' || c."calendarId", 1, c."userId", c."socialAccountId", c."calendarId", sha256('secret'),
    now() + CASE WHEN c."calendarId" %% 500 = 0 THEN interval '-1 hour' ELSE interval '50 hours' END
FROM calendar c WHERE c."calendarType" = 1 AND c."calendarId" %% 2 = 0;
INSERT INTO push_channel ("channelId", "calendarType", "userId", "socialAccountId", "calendarId", "secretHash",
    "expiresAt")
SELECT DISTINCT ON (c."userId") 'o-' || c."userId", 2, c."userId", c."socialAccountId", NULL, sha256('secret'),
    now() + interval '50 hours'
FROM calendar c WHERE c."calendarType" = 2;
INSERT INTO push_channel ("channelId", "calendarType", "userId", "socialAccountId", "calendarId", "secretHash",
    "expiresAt",
    "stoppedAt")
SELECT 'g-' || c."calendarId" || '-' || k, 1, c."userId", c."socialAccountId", c."calendarId", sha256('secret'),
    now() - make_interval(days => 2 * k), now() - make_interval(days => 2 * k)
FROM calendar c CROSS JOIN generate_series(1, 3) k WHERE c."calendarType" = 1 AND c."calendarId" %% 2 = 0;
INSERT INTO sync_run ("calendarId", reason, step, outcome, "startedAt", "finishedAt")
SELECT 1 + (r %% %(n)s), 'beat', 'done', 'ok', now() - interval '1 hour', now() - interval '59 minutes'
FROM generate_series(1, %(runs)s) r;
INSERT INTO sync_run ("calendarId", reason) SELECT i * 97, 'beat' FROM generate_series(1, 200) i;
INSERT INTO event_outbox ("eventId", "calendarId", op, "changedAt", "doneAt", outcome)
SELECT e, 1 + (e * 31) %% %(n)s, 'update', now() - interval '2 days', now() - interval '2 days', 'ok'
FROM generate_series(1, %(outbox_done)s) e;
INSERT INTO event_outbox ("eventId", "calendarId", op, "changedAt")
SELECT %(outbox_done)s + e, 1 + (e * 131) %% %(n)s, 'insert', now() - make_interval(secs => e)
FROM generate_series(1, %(outbox_pending)s) e;
"""


def seed(db_url: str, n: int) -> dict[str, Any]:
    """Seed ``n`` calendars and their bookkeeping; returns the row counts."""
    sizes = {"n": n, "users": (n + 4) // 5, "runs": 5 * n, "outbox_done": n, "outbox_pending": 1000}
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")  # no outbox trigger on the bulk load
        for statement in SEED.split(";\n"):
            if statement.strip():
                conn.execute(statement, sizes)  # type: ignore[arg-type]
        conn.execute("VACUUM ANALYZE")
        counts = {t: conn.execute(psql.SQL("SELECT count(*) FROM {}").format(psql.Identifier(t))).fetchone()[0]  # type: ignore[index]
                  for t in ("calendar", "push_channel", "sync_run", "event_outbox")}
    return counts


def fill_counters() -> int:
    """Worker counters as after a busy day: every endpoint and a spread of statuses, both providers."""
    from autosync import metrics
    from autosync.settings import get_settings

    s = get_settings()
    google = ["/calendars/c/events", "/calendars/c/events/e", "/calendars/c/events/watch", "/channels/stop"]
    graph = ["/me/calendarView/delta", "/me/events/e/instances", "/me/events/e", "/me/events", "/subscriptions",
             "/subscriptions/s"]
    for base, paths in ((s.google_api_url, google), (s.graph_api_url, graph)):
        for path in paths:
            for method in ("GET", "POST", "PATCH", "DELETE"):
                for status in ("200", "201", "204", "400", "401", "403", "404", "410", "412", "429", "500", "503",
                               "timeout", "connection_error"):
                    metrics.request(method, base + path, status, 0.05 + len(status) / 100)
    for outcome in ("ok", "failed", "needs_reauth", "blocked"):
        for kind in (1, 2):
            metrics.run_finished({"calendarType": kind, "outcome": outcome, "eventsSkipped": 1, "pushCreated": 1,
                                  "startedAt": datetime.now(UTC) - timedelta(seconds=3),
                                  "finishedAt": datetime.now(UTC)})
    metrics.fanned_out(10)
    return int(metrics.client().hlen(metrics.KEY))


def scrape_cost(db_url: str, n: int, repeats: int = 15) -> dict[str, Any]:
    """Seed ``n`` calendars, serve the real endpoint, and time ``repeats`` scrapes over HTTP.

    Measured twice: with change notifications on (every calendar watched: the calendar scan joins the
    live channels) and off (no live channel, as when AUTOSYNC_WEBHOOK_URL is unset).
    """
    from autosync.metrics_server import MetricsServer
    from autosync.settings import get_settings

    t0 = time.monotonic()
    counts = seed(db_url, n)
    seeded_s = time.monotonic() - t0
    fields = fill_counters()
    server = MetricsServer(get_settings(), "127.0.0.1", 0).start()
    try:
        with psycopg.connect(db_url) as conn:
            plan = _plan(conn)
        watched = _time_scrapes(server.url, repeats)
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute('UPDATE push_channel SET "stoppedAt" = now() WHERE "stoppedAt" IS NULL')
            conn.execute("VACUUM ANALYZE push_channel")
        polled = _time_scrapes(server.url, repeats)
    finally:
        server.stop()
    return {"calendars": n, "rows": counts, "seed_s": round(seeded_s, 1), "redis_fields": fields,
            **watched, "notifications_off": polled, "calendar_query_plan": plan}


def _time_scrapes(url: str, repeats: int) -> dict[str, Any]:
    walls, pg, rd = [], [], []
    session = requests.Session()
    session.get(url, timeout=30)  # warm-up: connection, plans, cache
    for _ in range(repeats):
        started = time.perf_counter()
        resp = session.get(url, timeout=30)
        walls.append(time.perf_counter() - started)
        resp.raise_for_status()
        sources = {s.labels["source"]: s.value for f in text_string_to_metric_families(resp.text)
                   if f.name == "autosync_metrics_source_seconds" for s in f.samples}
        pg.append(sources["postgresql"])
        rd.append(sources["redis"])
    families = list(text_string_to_metric_families(resp.text))
    return {"scrapes": repeats, "wall_ms_median": _ms(statistics.median(walls)), "wall_ms_max": _ms(max(walls)),
            "wall_ms_min": _ms(min(walls)), "postgresql_ms_median": _ms(statistics.median(pg)),
            "redis_ms_median": _ms(statistics.median(rd)), "bytes": len(resp.content), "families": len(families),
            "samples": sum(len(f.samples) for f in families), "load_average_1m": round(os.getloadavg()[0], 2)}


def _plan(conn: psycopg.Connection[Any]) -> list[str]:
    from autosync.metrics_server import LAG_BUCKETS
    from autosync.store import metrics as sql

    params = {"bounds": list(LAG_BUCKETS), "stale": 900, "stale_watched": 64800, "now": time.time()}
    rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql.CALENDARS, params).fetchall()
    return [r[0] for r in rows]


def record_cost(n: int = 5000) -> dict[str, Any]:
    """Microseconds per recorded event, through the functions the hooks call, against the limiter's Redis."""
    from autosync import metrics
    from autosync.settings import get_settings

    url = get_settings().google_api_url + "/calendars/c/events"
    run = {"calendarType": 1, "outcome": "ok", "eventsSkipped": 0, "pushCreated": 0,
           "startedAt": datetime.now(UTC) - timedelta(seconds=1), "finishedAt": datetime.now(UTC)}
    client = metrics.client()

    def per_call(fn: Any) -> float:
        for _ in range(200):
            fn()
        started = time.perf_counter()
        for _ in range(n):
            fn()
        return round((time.perf_counter() - started) / n * 1e6, 1)

    return {"calls": n,
            "redis_ping_us": per_call(client.ping),
            "request_us": per_call(lambda: metrics.request("GET", url, "200", 0.08)),
            "run_finished_us": per_call(lambda: metrics.run_finished(run)),
            "classify_only_us": per_call(lambda: metrics.classify("GET", url))}


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)

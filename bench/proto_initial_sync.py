"""Scratch prototype for issue 16 phase 2 (not part of the bench): one large Google initial sync done
in-process, without Celery, in several shapes, to measure what each worker-side change would buy.

python -m bench.proto_initial_sync --events 10000 --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import requests

from bench.harness import Services, create_database, drop_database, emulator, redis_server
from bench.workload import link_all, one_large_calendar

STAGE_DDL = ("CREATE TABLE IF NOT EXISTS proto_page_json (id bigserial PRIMARY KEY, body jsonb NOT NULL);"
             "CREATE TABLE IF NOT EXISTS proto_page_bytes (id bigserial PRIMARY KEY, body bytea NOT NULL)")


def _token(svc: Services) -> str:
    resp = requests.post(f"{svc.emulator_url}/google/token", data={
        "grant_type": "refresh_token", "client_id": "google-client-id", "client_secret": "google-secret",
        "refresh_token": "rt-google-big"}, timeout=10)
    resp.raise_for_status()
    return str(resp.json()["access_token"])


class Fetcher:
    """events.list pages through autosync's adapter (json_body) or with orjson on the raw bytes."""

    def __init__(self, svc: Services, token: str, ext_id: str, raw_json: bool, size: int = 1000) -> None:
        from autosync.providers import CalendarRef
        from autosync.services.context import context

        self.app = context()
        self.provider = self.app.provider(1)
        self.cal = CalendarRef(0, ext_id, "google-big", token)
        self.raw_json = raw_json
        self.size = size
        self.window = (datetime.now(UTC) - timedelta(days=28), datetime.now(UTC) + timedelta(days=365))

    replay: dict[str | None, tuple[bytes, str | None, str | None]] | None = None

    def page(self, token: str | None) -> tuple[list[dict[str, Any]], str | None, str | None, bytes]:
        """(items, next page token, sync token, the raw body)."""
        if self.replay is not None:  # a provider that costs nothing: the same bytes, parsed again
            if token in self.replay:
                raw, nxt, sync = self.replay[token]
                return orjson.loads(raw)["items"], nxt, sync, raw
            items, nxt, sync, raw = self._page(token)
            self.replay[token] = (raw, nxt, sync)
            return items, nxt, sync, raw
        return self._page(token)

    def _page(self, token: str | None) -> tuple[list[dict[str, Any]], str | None, str | None, bytes]:
        if not self.raw_json:
            p = self.provider.list_changes(self.cal, cursor=None, page=token, window=self.window)
            return list(p.items), p.next_page, p.sync_cursor, b""
        from autosync.normalize.google import SYNCED_EVENT_TYPES
        from autosync.providers.google import rfc3339

        params: dict[str, Any] = {"showDeleted": "true", "singleEvents": "false", "maxResults": str(self.size),
                                  "eventTypes": list(SYNCED_EVENT_TYPES), "timeMin": rfc3339(self.window[0])}
        if token:
            params["pageToken"] = token
        from urllib.parse import quote

        resp = self.provider._call("GET", self.cal, f"/calendars/{quote(self.cal.ext_calendar_id or '')}/events",
                                   params=params)
        raw = resp.content
        body = orjson.loads(raw)
        return body["items"], body.get("nextPageToken"), body.get("nextSyncToken"), raw


def _import(conn: Any, calendar_id: int, user_id: int, run_id: int, items: list[dict[str, Any]],
            seen: bool) -> None:
    from autosync.normalize.google import page_from_google
    from autosync.store import events as ev_sql

    events, _ = page_from_google(items)
    live = [e for e in events if not e.cancelled]
    if seen:
        ev_sql.record_seen(conn, run_id, [e.ext_id for e in events])
    ev_sql.upsert(conn, calendar_id, user_id, live)


def sync(fetch: Fetcher, calendar_id: int, user_id: int, *, stage: str | None, seen: bool, prefetch: bool) -> int:
    """One full listing into an empty calendar; returns pages. ``stage``: None, 'json' or 'bytes'."""
    from autosync.store import runs as run_sql
    from autosync.store.db import transaction

    with transaction() as conn:
        run_id = conn.execute('INSERT INTO sync_run ("calendarId", reason) VALUES (%s, %s) RETURNING "runId"',
                              (calendar_id, "proto")).fetchone()["runId"]
    pool = ThreadPoolExecutor(1) if prefetch else None
    token: str | None = None
    ahead = None
    pages = 0
    while True:
        items, nxt, sync_token, raw = ahead.result() if ahead is not None else fetch.page(token)
        ahead = pool.submit(fetch.page, nxt) if pool is not None and nxt else None
        pages += 1
        if stage == "json":
            with transaction() as conn:
                page_id = conn.execute("INSERT INTO proto_page_json (body) VALUES (%s::jsonb) RETURNING id",
                                       (run_sql.page_json({"items": items}),)).fetchone()["id"]
            with transaction() as conn:
                items = conn.execute("SELECT body FROM proto_page_json WHERE id = %s", (page_id,)
                                     ).fetchone()["body"]["items"]
        elif stage == "bytes":
            with transaction() as conn:
                page_id = conn.execute("INSERT INTO proto_page_bytes (body) VALUES (%s) RETURNING id",
                                       (raw,)).fetchone()["id"]
            with transaction() as conn:
                items = orjson.loads(conn.execute("SELECT body FROM proto_page_bytes WHERE id = %s", (page_id,)
                                                  ).fetchone()["body"])["items"]
        with transaction() as conn:
            _import(conn, calendar_id, user_id, run_id, items, seen)
            conn.execute('UPDATE sync_run SET "pageCursor" = %s WHERE "runId" = %s', (nxt, run_id))
            if sync_token:
                run_sql.commit_cursor(conn, calendar_id, sync_token, (None, None))
        if not nxt:
            break
        token = nxt
    if pool is not None:
        pool.shutdown()
    return pages


VARIANTS: dict[str, dict[str, Any]] = {
    "A  today's work, in one process: jsonb staging, stdlib JSON, sync_seen": dict(stage="json", raw=False,
                                                                                 seen=True, prefetch=False),
    "B  no staging (page + cursor in one transaction)": dict(stage=None, raw=False, seen=True, prefetch=False),
    "C  B + orjson on the response bytes": dict(stage=None, raw=True, seen=True, prefetch=False),
    "D  C + no sync_seen (calendar empty when the run began)": dict(stage=None, raw=True, seen=False,
                                                                   prefetch=False),
    "E  D + page N+1 fetched in a thread while page N imports": dict(stage=None, raw=True, seen=False,
                                                                     prefetch=True),
    "F  E + staging as bytea (raw bytes, read back, orjson)": dict(stage="bytes", raw=True, seen=False,
                                                                   prefetch=True),
    "G  jsonb staging + prefetch, stdlib JSON, sync_seen": dict(stage="json", raw=False, seen=True,
                                                                prefetch=True),
    "H  E with pages of 2,500 events (Google's maximum)": dict(stage=None, raw=True, seen=False, prefetch=True,
                                                               size=2500),
    "I  H, pages replayed from memory (a provider costing nothing)": dict(stage=None, raw=True, seen=False,
                                                                        prefetch=True, size=2500, replay=True),
}


def main(argv: list[str] | None = None) -> int:
    """Time every variant ``--repeat`` times, interleaved, each into a fresh empty calendar."""
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=10000)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    svc = Services()
    times: dict[str, list[float]] = {k: [] for k in VARIANTS}
    rows = 0
    with redis_server(svc):
        svc.apply()
        create_database(svc)
        try:
            work, seed = one_large_calendar("google", args.events)
            from autosync.store.db import transaction

            with transaction() as conn:
                conn.execute(STAGE_DDL)
            with emulator(svc, seed):
                token = _token(svc)
                fetchers = {(raw, size, replay): Fetcher(svc, token, work.calendars[0][3], raw, size)
                            for raw in (False, True) for size in (1000, 2500) for replay in (False, True)}
                for (_, _, replay), f in fetchers.items():
                    if replay:
                        f.replay = {}
                        nxt: str | None = None
                        while True:  # fill the replay cache, untimed
                            _, nxt, _, _ = f.page(nxt)
                            if not nxt:
                                break
                for _ in range(args.repeat):
                    for name, v in VARIANTS.items():
                        cal = link_all(svc.db_url, work)[0]
                        with transaction() as conn:
                            user = conn.execute('SELECT "userId" FROM calendar WHERE "calendarId" = %s',
                                                (cal,)).fetchone()["userId"]
                        started = time.perf_counter()
                        fetch = fetchers[v["raw"], v.get("size", 1000), v.get("replay", False)]
                        sync(fetch, cal, user, stage=v["stage"], seen=v["seen"], prefetch=v["prefetch"])
                        times[name].append(time.perf_counter() - started)
                        with transaction() as conn:
                            rows = conn.execute('SELECT count(*) AS n FROM cal_event WHERE "calendarId" = %s',
                                                (cal,)).fetchone()["n"]
                            conn.execute('DELETE FROM cal_event WHERE "calendarId" = %s', (cal,))
        finally:
            drop_database(svc)
    print(f"google ~{args.events} events, {rows} rows per sync, median of {args.repeat} (min-max):")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name:<72} {rows / med:>7.0f} events/s  ({min(ts):.2f}-{max(ts):.2f} s)")
    return 0


_: Callable[..., Any] = main
if __name__ == "__main__":
    sys.exit(main())

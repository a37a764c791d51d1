"""AUTOSYNC_WATCH_TTL per provider: a lifetime valid for Google channels is capped for Graph.

Graph refuses an Outlook event subscription asked to live longer than its limit (4,230 minutes in
its docs' subscription-lifetime table); Google documents no maximum and shortens a channel itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.e2e.helpers import events, link, sync

WEEK = 7 * 24 * 3600
GRAPH_MAX_MINUTES = 4230


@pytest.fixture()
def week_long_channels(worker: object) -> Iterator[None]:
    """`autosync webhooks` on a free port, and workers asking channels to live a week."""
    from autosync.services import context as ctxmod
    from autosync.settings import get_settings
    from autosync.webhooks import Receiver

    receiver = Receiver("127.0.0.1", 0).start()
    saved = ctxmod._ctx, ctxmod._pid
    settings = replace(get_settings(), webhook_url=receiver.url + "/hooks", watch_ttl=WEEK)
    ctxmod._ctx, ctxmod._pid = ctxmod.build(settings), os.getpid()
    try:
        yield
    finally:
        ctxmod._ctx, ctxmod._pid = saved
        receiver.stop()


def _channel(db: psycopg.Connection, kind: int) -> dict[str, Any]:
    with db.cursor(row_factory=psycopg.rows.dict_row) as cur:
        [found] = cur.execute('SELECT * FROM push_channel WHERE "calendarType" = %s', (kind,)).fetchall()
    return found


def test_a_week_long_watch_ttl_is_capped_for_outlook_only(week_long_channels, db, emu) -> None:
    emu.push_settings(graph_max_minutes=float(GRAPH_MAX_MINUTES))
    google = link(db, emu, "google", "gina@example.com")
    outlook = link(db, emu, "outlook", "otto@example.com")
    asked = datetime.now(UTC)
    sync(google.user_id)
    sync(outlook.user_id)
    emu.wait_push_idle()
    watch_errors = db.execute('SELECT "watchError" FROM calendar ORDER BY "calendarId"').fetchall()
    assert watch_errors == [(None,), (None,)]
    g, o = _channel(db, 1), _channel(db, 2)
    assert g["expiresAt"] >= asked + timedelta(seconds=WEEK) - timedelta(minutes=1)  # asked as configured
    assert asked + timedelta(minutes=GRAPH_MAX_MINUTES - 5) <= o["expiresAt"] <= datetime.now(UTC) + timedelta(
        minutes=GRAPH_MAX_MINUTES)
    # The capped subscription is not taken for one about to expire: the next run leaves it alone.
    emu.clear_requests()
    sync(outlook.user_id)
    assert [r for r in emu.requests(provider="outlook")["requests"] if "subscriptions" in r["endpoint"]] == []
    assert events(db, outlook.calendar_id) == {}

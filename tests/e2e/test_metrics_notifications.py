"""Metrics of change notifications end to end: verdicts, notification-to-import time, watched and lost channels.

The emulator notifies a real `autosync webhooks` receiver; the in-process worker syncs; `autosync
metrics` runs as its own process and is scraped over HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from tests.e2e.metrics_helpers import metrics_process, scrape
from tests.e2e.test_push_notifications import (  # noqa: F401 - hooks is a fixture
    _channels,
    _google_event,
    _wait_runs,
    _watched_google,
    hooks,
)


@pytest.fixture(scope="module")
def metrics_url() -> Iterator[str]:
    """`autosync metrics` on a free port, for the module."""
    with metrics_process() as url:
        yield url


def test_a_notification_is_counted_and_its_time_to_import_measured(hooks, db, emu, metrics_url) -> None:  # noqa: F811
    cal = _watched_google(db, emu)
    [channel] = _channels(db)
    before = scrape(metrics_url)
    assert before.value("autosync_calendars_watched", provider="google") == 1
    assert before.value("autosync_channels", provider="google") == 1
    assert before.value("autosync_channels_expired", provider="google") == 0
    assert before.value("autosync_notification_to_import_seconds_count", provider="google") == 0
    accepted = before.value("autosync_notifications_total", provider="google", verdict="accepted")

    emu.clear_push_deliveries()
    started = time.time()
    emu.google_insert(cal.ext_calendar_id, _google_event("Added in Google", 3))
    runs = _wait_runs(db, cal.calendar_id, 2)
    waited = time.time() - started
    assert runs[-1]["reason"] == "watch" and runs[-1]["outcome"] == "ok"
    forged = requests.post(hooks.url + "/hooks/google", timeout=5, headers={
        "X-Goog-Channel-ID": channel["channelId"], "X-Goog-Channel-Token": "not-the-secret",
        "X-Goog-Resource-State": "exists", "X-Goog-Resource-ID": channel["resourceId"]})
    assert forged.status_code == 403

    got = scrape(metrics_url)
    delivered = [d for d in emu.push_deliveries(provider="google") if d["kind"] == "exists"]
    assert len(delivered) == 1
    assert got.value("autosync_notifications_total", provider="google", verdict="accepted") == accepted + 1
    assert got.value("autosync_notifications_total", provider="google", verdict="forbidden") == 1
    assert got.value("autosync_notification_to_import_seconds_count", provider="google") == 1
    assert 0 < got.value("autosync_notification_to_import_seconds_sum", provider="google") <= waited


def test_an_expired_channel_counts_as_lost_and_its_calendar_as_unwatched(hooks, db, emu, metrics_url) -> None:  # noqa: F811
    _watched_google(db, emu)
    db.execute('UPDATE push_channel SET "expiresAt" = now() - interval \'1 minute\'')  # nobody renewed it
    got = scrape(metrics_url)
    assert got.value("autosync_channels_expired", provider="google") == 1
    assert got.value("autosync_channels", provider="google") == 0
    assert got.value("autosync_calendars_watched", provider="google") == 0

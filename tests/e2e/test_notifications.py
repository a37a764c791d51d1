"""User notifications: queued in PostgreSQL, published on Redis pub/sub, kept until delivered."""

from __future__ import annotations

import json
import os
import threading
import time

import redis

from autosync.services.context import build
from autosync.services.notices import RedisSender, deliver_pending
from autosync.settings import Settings
from tests.e2e.helpers import link, sync


def _ctx():
    return build(Settings.from_env({**os.environ, "AUTOSYNC_NOTIFICATION_SENDER": "redis",
                                    "AUTOSYNC_NOTIFICATION_CHANNEL": f"autosync:test:{os.getpid()}"}))


def test_needs_reauth_notification_is_published_and_marked_delivered(worker, db, emu) -> None:
    cal = link(db, emu, "google")
    emu.revoke(cal.account_id)
    assert sync(cal.user_id)["runs"][0]["outcome"] == "needs_reauth"
    app = _ctx()
    client = redis.Redis.from_url(app.settings.redis)
    pubsub = client.pubsub()
    pubsub.subscribe(app.settings.notification_channel)
    pubsub.get_message(timeout=1)  # the subscribe confirmation
    received: list[dict] = []

    def listen() -> None:
        message = pubsub.get_message(timeout=5, ignore_subscribe_messages=True)
        if message:
            received.append(json.loads(message["data"]))

    listener = threading.Thread(target=listen)
    listener.start()
    time.sleep(0.1)
    assert deliver_pending(app) == 1
    listener.join()
    assert received and received[0]["kind"] == "needs_reauth" and received[0]["userId"] == cal.user_id
    assert "reason" in received[0]["payload"]
    row = db.execute('SELECT "deliveredAt" IS NOT NULL, attempts FROM notification').fetchone()
    assert row == (True, 1)
    assert deliver_pending(app) == 0  # nothing is sent twice


def test_a_notification_nobody_received_stays_pending(worker, db, emu) -> None:
    db.execute("INSERT INTO user_main (email) VALUES ('x@example.com')")
    db.execute("INSERT INTO notification (\"userId\", kind, payload) VALUES (1, 'sync_complete', '{}')")
    app = _ctx()
    assert deliver_pending(app, RedisSender(app.settings.redis, "autosync:nobody-listens")) == 0
    assert db.execute('SELECT "deliveredAt", attempts FROM notification').fetchone() == (None, 1)

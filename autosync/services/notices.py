"""User notifications (sync finished, needs re-auth): a pluggable sender, an outbox until delivered."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Protocol

import redis

from autosync.services.context import App

log = logging.getLogger(__name__)

class Sender(Protocol):
    """Delivers one notification to the app backend; raises on failure."""

    def send(self, notification: dict[str, Any]) -> None:
        """Deliver, or raise."""


class RedisSender:
    """Publishes each notification as JSON on a Redis pub/sub channel for the app backend to forward."""

    def __init__(self, url: str, channel: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.channel = channel

    def send(self, notification: dict[str, Any]) -> None:
        """PUBLISH; a notification nobody listened to stays pending (0 receivers = not delivered)."""
        receivers = self.client.publish(self.channel, json.dumps(notification, default=str))
        if receivers == 0:
            raise ConnectionError("no subscriber on the notification channel")


class LogSender:
    """Writes notifications to the log (for deployments without a listener)."""

    def send(self, notification: dict[str, Any]) -> None:
        """Log it."""
        log.info("notification", extra={"notification": notification})


_senders: dict[tuple[str, str], RedisSender] = {}
_senders_lock = threading.Lock()


def sender_for(app: App) -> Sender:
    """The configured sender; one Redis client per process (thread-safe, reused by every delivery)."""
    if app.settings.notification_sender == "log":
        return LogSender()
    key = (app.settings.redis, app.settings.notification_channel)
    with _senders_lock:
        if key not in _senders:
            _senders[key] = RedisSender(*key)
        return _senders[key]


def deliver_pending(app: App, sender: Sender | None = None, limit: int = 200) -> int:
    """Send pending notifications; returns how many were delivered."""
    sender = sender or sender_for(app)
    with app.store.unit() as tx:
        rows = tx.claim_notices(limit)
        ok, failed = [], []
        for row in rows:
            try:
                sender.send({"notificationId": row["notificationId"], "userId": row["userId"],
                             "kind": row["kind"], "payload": row["payload"], "createdAt": row["createdAt"]})
                ok.append(row["notificationId"])
            except Exception as exc:  # a sender failure must not lose the notification
                log.warning("notification not delivered", extra={"error": f"{type(exc).__name__}: {exc}"})
                failed.append(row["notificationId"])
        tx.notices_sent(ok, delivered=True)
        tx.notices_sent(failed, delivered=False)
    return len(ok)

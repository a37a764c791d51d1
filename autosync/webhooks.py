"""`autosync webhooks`: the receiver of change notifications (Google watch channels, Graph subscriptions).

It answers fast and does little: check the notification against its channel, publish one small
`autosync.changed` task (channel id and event, never the secret), answer. Google is answered 200
(a 5xx would make it retry), Graph 202 within its 3-second budget (the notification is retried, then
dropped, when answered later). When PostgreSQL or the broker is down it answers 503, so both
providers deliver again later. Forged notifications are refused from memory (services/channels.py),
and the HTTP server in front is hardened for the open internet (autosync/webserver.py).

Routes (any path prefix, so it can sit behind a proxy): POST .../google, POST .../graph (also the
validation handshake), POST .../graph/lifecycle, GET .../healthz (the process answers; no I/O),
GET .../readyz (PostgreSQL, the broker and the channel list are usable).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

import psycopg
import redis
from kombu.exceptions import OperationalError as BrokerError

from autosync.services.channels import ChannelBook, Note, OurSideDown, receive
from autosync.settings import Settings, get_settings
from autosync.store.db import ping, transaction
from autosync.webserver import HardenedServer, Limits

log = logging.getLogger("autosync.webhooks")

# Graph's validation tokens are a sentence and a request id (about 120 characters); anything much
# longer is not Graph's, and is not echoed.
MAX_VALIDATION_TOKEN = 1024
PLAIN = [("Content-Type", "text/plain; charset=utf-8"), ("X-Content-Type-Options", "nosniff"),
         ("Content-Security-Policy", "default-src 'none'"), ("Cache-Control", "no-store")]
ROUTES = (("/graph/lifecycle", "lifecycle"), ("/graph", "graph"), ("/google", "google"))
StartResponse = Callable[..., Any]


def _publish(channel_id: str, event: str, calendar_type: int) -> None:
    from autosync.tasks import QUEUES, changed

    # Fail fast when the broker is away: the provider's own redelivery is the retry (answer 503).
    changed.apply_async(args=(channel_id, event), queue=QUEUES.get(calendar_type, "autosync"),
                        retry=True, retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2,
                                                  "interval_max": 0.5})


class Refusals:
    """Counts refused notifications and logs them at most every 10 s, so a flood cannot flood the log."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._since = 0.0  # the first refusal is logged at once

    def add(self, verdict: str, channel_id: str) -> None:
        """Count one refusal (unknown, forbidden, replayed, malformed)."""
        with self._lock:
            self._counts[verdict] = self._counts.get(verdict, 0) + 1
            if time.monotonic() - self._since < 10:
                return
            counts, self._counts, self._since = self._counts, {}, time.monotonic()
        log.warning("notifications refused", extra={**counts, "example": channel_id[:64]})


class Hooks:
    """The WSGI application of the receiver."""

    def __init__(self, book: ChannelBook, settings: Settings, publish: Callable[[str, str, int], None] = _publish):
        self.book = book
        self.publish = publish
        self.refusals = Refusals()
        self._broker = redis.Redis.from_url(settings.broker_redis_url, socket_connect_timeout=1, socket_timeout=1)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], (environ.get("PATH_INFO") or "").rstrip("/")
        if path.endswith("/healthz"):
            return _answer(start_response, 200, b"ok\n")
        if path.endswith("/readyz"):
            return self._ready(start_response)
        route = next((name for suffix, name in ROUTES if path.endswith(suffix)), None)
        if route is None:
            return _answer(start_response, 404, b"")
        if method != "POST":
            return _answer(start_response, 405, b"", [("Allow", "POST")])
        query = parse_qs(environ.get("QUERY_STRING") or "", keep_blank_values=True, max_num_fields=20)
        if route != "google" and "validationToken" in query:
            return _validation(start_response, query["validationToken"][0])
        if not environ.get("CONTENT_LENGTH"):
            # Both providers always send a length (0 for Google's empty body): a POST without one
            # is not theirs, and reading it would mean guessing where it ends.
            return _answer(start_response, 400, b"Content-Length required\n")
        body = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))  # bounded by the server
        try:
            if route == "google":
                return _answer(start_response, self._google(environ), b"")
            return _answer(start_response, self._graph(body, lifecycle=route == "lifecycle"), b"")
        except (OurSideDown, psycopg.Error, redis.RedisError, BrokerError, OSError) as exc:
            # Our side is down: a 5xx makes the provider deliver it again later.
            log.error("notification not taken", extra={"error": type(exc).__name__})
            return _answer(start_response, 503, b"", [("Retry-After", "10")])

    def _google(self, environ: dict[str, Any]) -> int:
        # All Google sends is in headers: the body is empty (developers.google.com/calendar/api/guides/push).
        channel_id = environ.get("HTTP_X_GOOG_CHANNEL_ID") or ""
        event = (environ.get("HTTP_X_GOOG_RESOURCE_STATE") or "").strip()[:64]
        raw_number = (environ.get("HTTP_X_GOOG_MESSAGE_NUMBER") or "").strip()
        number = int(raw_number) if raw_number.isdigit() and len(raw_number) <= 18 else None
        note = Note(channel_id, environ.get("HTTP_X_GOOG_CHANNEL_TOKEN"), event, number)
        [verdict] = receive(self.book, 1, [note], self.publish) if channel_id else ["unknown"]
        if verdict == "unknown" and event == "sync":
            # Google's handshake can overtake the watch answer, before the channel is stored.
            log.info("channel handshake", extra={"channel": channel_id[:64]})
        elif verdict != "accepted":
            self.refusals.add(verdict, channel_id)
        # Unknown (a replaced channel) and replays are answered 200 so Google does not retry; a wrong
        # token is not.
        return 403 if verdict == "forbidden" else 200

    def _graph(self, body: bytes, *, lifecycle: bool) -> int:
        try:
            items = json.loads(body or b"{}").get("value")
        except (ValueError, AttributeError, RecursionError):
            return 400
        if not isinstance(items, list):
            return 400
        notes = []
        for item in items:
            sub = item.get("subscriptionId") if isinstance(item, dict) else None
            event = item.get("lifecycleEvent" if lifecycle else "changeType") if isinstance(item, dict) else None
            if isinstance(sub, str) and isinstance(event, str):
                notes.append(Note(sub, item.get("clientState"), event[:64]))
            else:
                self.refusals.add("malformed", str(sub)[:64])
        for note, verdict in zip(notes, receive(self.book, 2, notes, self.publish) if notes else [], strict=True):
            if verdict != "accepted":
                self.refusals.add(verdict, note.channel_id)
        # Graph cannot be told per item; each batch is acknowledged (202: queued).
        return 202

    def _ready(self, start_response: StartResponse) -> Iterable[bytes]:
        problems = []
        if not self.book.live:
            problems.append("channel list not loaded")
        try:
            with transaction(timeout=1.0) as conn:
                ping(conn)
        except psycopg.Error:
            problems.append("PostgreSQL unreachable (AUTOSYNC_DATABASE_URL)")
        try:
            self._broker.ping()
        except redis.RedisError:
            problems.append("broker unreachable (AUTOSYNC_BROKER_URL)")
        if problems:
            return _answer(start_response, 503, ("; ".join(problems) + "\n").encode())
        return _answer(start_response, 200, b"ready\n")


def _validation(start_response: StartResponse, token: str) -> Iterable[bytes]:
    """Graph's handshake: echo the URL-decoded token as plain text, within 10 s.

    learn.microsoft.com/graph/change-notifications-delivery-webhooks#notificationurl-validation
    """
    if len(token) > MAX_VALIDATION_TOKEN:
        return _answer(start_response, 400, b"validationToken too long\n")
    return _answer(start_response, 200, token.encode("utf-8"))


_REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 503: "Service Unavailable"}


def _answer(start_response: StartResponse, status: int, payload: bytes,
            extra: list[tuple[str, str]] | None = None) -> Iterable[bytes]:
    # Always plain text, never sniffed: an echoed token can never become HTML in a browser.
    start_response(f"{status} {_REASONS[status]}", [*PLAIN, ("Content-Length", str(len(payload))), *(extra or [])])
    return [payload]


def limits(settings: Settings) -> Limits:
    """The receiver's limits from settings."""
    return Limits(header_timeout=settings.webhook_header_timeout, body_timeout=settings.webhook_body_timeout,
                  max_connections=settings.webhook_max_connections, threads=settings.webhook_threads)


class Receiver:
    """The receiver on a host and port (0: a free one), served from a thread or the foreground."""

    def __init__(self, host: str, port: int, settings: Settings | None = None) -> None:
        settings = settings or get_settings()
        import autosync.tasks  # noqa: F401  (loaded now, not by the first notification, which has 3 s)

        self.book = ChannelBook(settings.database_url)
        self.app = Hooks(self.book, settings)
        self.server = HardenedServer(self.app, host, port, limits(settings))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL of this receiver."""
        host, port = self.server.address
        return f"http://{host}:{port}"

    def start(self) -> Receiver:
        """Serve from a daemon thread (waiting a few seconds for the channel list)."""
        self.book.start(wait=5)
        self._thread = threading.Thread(target=self.server.run, name="autosync-webhooks", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until ``stop`` (or Ctrl-C)."""
        self.book.start()
        try:
            self.server.run()
        finally:
            self.book.stop()

    def stop(self) -> None:
        """Stop serving and close every connection."""
        self.server.stop()
        if self._thread:
            self._thread.join(timeout=10)
        self.book.stop()

"""`autosync webhooks`: the receiver of change notifications (Google watch channels, Graph subscriptions).

It answers fast and does little: check the notification against its channel, publish one small
`autosync.changed` task (channel id and event, never the secret), answer. Google is answered 200
(a 5xx would make it retry), Graph 202 within its 3-second budget (trap 36). When PostgreSQL or the
broker is down it answers 503, so both providers deliver again later.

Routes (any path prefix, so it can sit behind a proxy): POST .../google, POST .../graph (also the
validation handshake), POST .../graph/lifecycle, GET .../healthz.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import redis
from kombu.exceptions import OperationalError as BrokerError

from autosync import metrics

log = logging.getLogger("autosync.webhooks")

MAX_BODY = 1 << 20  # Graph batches are small; refuse anything absurd


class WebhookServer(ThreadingHTTPServer):
    """Threading HTTP/1.1 server for the receiver; closing it also drops its keep-alive connections."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def server_close(self) -> None:
        super().server_close()
        with self._open_lock:
            open_now, self._open = list(self._open), set()
        for sock in open_now:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _publish(channel_id: str, event: str, calendar_type: int | None) -> None:
    from autosync.tasks import QUEUES, changed

    # Fail fast when the broker is away: the provider's own redelivery is the retry (answer 503).
    changed.apply_async(args=(channel_id, event), queue=QUEUES.get(calendar_type or 0, "autosync"),
                        retry=True, retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2,
                                                  "interval_max": 0.5})


def handle(channel_id: str, secret: str | None, event: str) -> str:
    """Verify one notification and queue its sync; returns accepted | unknown | forbidden."""
    from autosync.services.watch import verify

    verdict = verify(channel_id, secret, event)
    metrics.notification_received(channel_id, event, verdict)
    if verdict.status == "unknown" and event == "sync":
        # Google's handshake can overtake the watch answer, before the channel is stored.
        log.info("channel handshake", extra={"channel": channel_id})
        return verdict.status
    if verdict.status != "accepted":
        log.warning("notification refused", extra={"channel": channel_id, "event": event,
                                                   "verdict": verdict.status})
        return verdict.status
    if verdict.sync:
        _publish(channel_id, event, verdict.calendar_type)
    log.info("notification accepted", extra={"channel": channel_id, "event": event, "queued": verdict.sync})
    return verdict.status


class WebhookHandler(BaseHTTPRequestHandler):
    """One request: route by the last path segments."""

    protocol_version = "HTTP/1.1"
    server: WebhookServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: one structured line per notification instead."""

    def do_GET(self) -> None:
        if urlsplit(self.path).path.rstrip("/").endswith("/healthz"):
            self._answer(200, b"ok", "text/plain")
        else:
            self._answer(404, b"", "text/plain")

    def do_POST(self) -> None:
        split = urlsplit(self.path)
        path = split.path.rstrip("/")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._answer(413, b"", "text/plain")
            return
        body = self.rfile.read(length) if length else b""
        try:
            if path.endswith("/graph/lifecycle") or path.endswith("/graph"):
                self._graph(split.query, body, lifecycle=path.endswith("/lifecycle"))
            elif path.endswith("/google"):
                self._google()
            else:
                self._answer(404, b"", "text/plain")
        except (psycopg.Error, redis.RedisError, BrokerError, OSError) as exc:
            # Our side is down: a 5xx makes the provider deliver it again later.
            log.error("notification not taken", extra={"error": f"{type(exc).__name__}: {exc}"})
            self._answer(503, b"", "text/plain")

    def _google(self) -> None:
        h = self.headers
        status = handle(h.get("X-Goog-Channel-ID") or "", h.get("X-Goog-Channel-Token"),
                        (h.get("X-Goog-Resource-State") or "").strip())
        # Unknown (a replaced channel) is answered 200 so Google does not retry; a wrong token is not.
        self._answer(403 if status == "forbidden" else 200, b"", "text/plain")

    def _graph(self, query: str, body: bytes, *, lifecycle: bool) -> None:
        params = parse_qs(query, keep_blank_values=True)
        if "validationToken" in params:
            # The handshake: echo the URL-decoded token as plain text, within 10 s (trap 36).
            self._answer(200, params["validationToken"][0].encode(), "text/plain; charset=utf-8")
            return
        try:
            items = json.loads(body or b"{}").get("value") or []
        except (ValueError, AttributeError):
            self._answer(400, b"", "text/plain")
            return
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict):
                continue
            event = str((item.get("lifecycleEvent") if lifecycle else item.get("changeType")) or "")
            handle(str(item.get("subscriptionId") or ""), item.get("clientState"), event)
        self._answer(202, b"", "text/plain")

    def _answer(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    def finish(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            super().finish()


class Receiver:
    """The receiver on a host and port (0: a free one), served from a thread or the foreground."""

    def __init__(self, host: str, port: int) -> None:
        self.server = WebhookServer((host, port), WebhookHandler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL of this receiver."""
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Receiver:
        """Serve from a daemon thread."""
        self._thread = threading.Thread(target=self.server.serve_forever, name="autosync-webhooks", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until shutdown."""
        self.server.serve_forever()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.server.shutdown()
        self.server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

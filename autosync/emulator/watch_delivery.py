"""Delivery of the emulator's push notifications: ordered queues, daemon threads, retries, the delivery log.

Deliveries are sent by a few daemon threads, never while the emulator's lock is held. Each channel or
subscription always maps to the same thread, so its notifications arrive in order; a failing delivery
is retried (exponential backoff) before the next one of its thread is sent, as Google and Graph retry
before moving on (https://developers.google.com/workspace/calendar/api/guides/push, https://learn.microsoft.com/graph/change-notifications-delivery-webhooks).
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from autosync.emulator.requestlog import EntryLog

GOOGLE_RETRY_STATUSES = frozenset({500, 502, 503, 504})


@dataclass
class PushSettings:
    """Limits and timings of push notifications; tests change them through the admin API."""

    google_max_ttl: float = 604800.0  # seconds a Google channel may live at most
    graph_max_minutes: float = 10080.0  # minutes a Graph subscription may live at most
    validation_timeout: float = 10.0  # seconds a Graph receiver has to answer the validation request
    notification_timeout: float = 3.0  # seconds a receiver has to answer one notification
    push_retries: int = 3  # extra attempts after a retryable failure
    push_retry_delay: float = 0.2  # seconds before the first retry; doubles every retry
    paused: bool = False  # while true, change notifications are dropped (lost, as in real life)


@dataclass
class Delivery:
    """One notification to send: where, what, and which failures are retried."""

    provider: str  # "google" | "outlook"
    target: str  # channel or subscription id (the ordering key)
    url: str
    kind: str  # sync | exists | change | lifecycle
    headers: dict[str, str]
    body: bytes = b""
    retry_statuses: frozenset[int] | None = None  # None: every non-2xx answer is retried
    alive: Callable[[], bool] | None = None  # checked before every attempt; False drops the delivery
    generation: int = field(default=0, repr=False)

    def retryable(self, status: int | None) -> bool:
        """Whether a failed attempt (status None: no answer) is retried."""
        if status is None or self.retry_statuses is None:
            return True
        return status in self.retry_statuses


@dataclass
class Answer:
    """What a receiver answered to one POST (status None and ``error`` set when it did not answer)."""

    status: int | None
    error: str | None = None
    body: bytes = b""
    content_type: str = ""


def new_session() -> requests.Session:
    """A session that ignores proxy variables (notifications go straight to the receiver)."""
    session = requests.Session()
    session.trust_env = False
    return session


def post(session: requests.Session, url: str, headers: dict[str, str], body: bytes, timeout: float) -> Answer:
    """POST once; connection errors and timeouts become an Answer without status."""
    try:
        response = session.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        return Answer(None, f"{type(exc).__name__}: {exc}")
    return Answer(response.status_code, None, response.content, response.headers.get("Content-Type", ""))


class DeliveryLog(EntryLog):
    """Every delivery attempt (and validation request), in the order they were made."""

    def record(
        self,
        provider: str,
        target: str,
        url: str,
        kind: str,
        headers: dict[str, str],
        body: bytes,
        answer: Answer,
        attempt: int,
    ) -> None:
        """Append one attempt; ``body`` is kept as JSON when it parses, else as text (None when empty)."""
        entry = {
            "provider": provider,
            "id": target,
            "url": url,
            "kind": kind,
            "headers": dict(headers),
            "body": _decoded(body),
            "status": answer.status,
            "error": answer.error,
            "attempt": attempt,
            "time": time.time(),
        }
        self._append(entry)

    def query(self, provider: str | None = None) -> list[dict[str, Any]]:
        """The entries, optionally of one provider."""
        return self._select(lambda e: provider is None or e["provider"] == provider)


def _decoded(body: bytes) -> Any:
    if not body:
        return None
    text = body.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


class Dispatcher:
    """Per-thread FIFO queues of deliveries; a delivery's target picks its thread."""

    def __init__(self, settings: Callable[[], PushSettings], log: DeliveryLog, threads: int = 2) -> None:
        self._settings = settings
        self.log = log
        self._cond = threading.Condition()
        self._queues: list[deque[Delivery]] = [deque() for _ in range(threads)]
        self._busy = 0
        self._generation = 0
        self._stopping = False
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start the delivery threads (no-op when running)."""
        with self._cond:
            if self._threads:
                return
            self._stopping = False
            for index in range(len(self._queues)):
                thread = threading.Thread(target=self._run, args=(index,), name=f"emulator-push-{index}", daemon=True)
                self._threads.append(thread)
                thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the threads; queued deliveries are dropped."""
        with self._cond:
            self._stopping = True
            threads, self._threads = self._threads, []
            self._cond.notify_all()
        for thread in threads:
            thread.join(timeout)

    def submit(self, delivery: Delivery) -> None:
        """Queue a delivery behind the earlier ones of its target."""
        with self._cond:
            delivery.generation = self._generation
            self._queues[zlib.crc32(delivery.target.encode()) % len(self._queues)].append(delivery)
            self._cond.notify_all()

    def pending(self) -> int:
        """Queued deliveries plus those being sent (retries included)."""
        with self._cond:
            return sum(len(q) for q in self._queues) + self._busy

    def clear(self) -> None:
        """Drop every queued delivery; those being sent stop before their next attempt."""
        with self._cond:
            self._generation += 1
            for queue in self._queues:
                queue.clear()
            self._cond.notify_all()

    def _run(self, index: int) -> None:
        session = new_session()
        queue = self._queues[index]
        while True:
            with self._cond:
                while not self._stopping and not queue:
                    self._cond.wait()
                if self._stopping:
                    return
                item = queue.popleft()
                self._busy += 1
            try:
                self._deliver(session, item)
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()

    def _wanted(self, item: Delivery) -> bool:
        with self._cond:
            if self._stopping or item.generation != self._generation:
                return False
        return item.alive is None or item.alive()

    def _deliver(self, session: requests.Session, item: Delivery) -> None:
        settings = self._settings()
        attempt = 0
        while self._wanted(item):
            attempt += 1
            answer = post(session, item.url, item.headers, item.body, settings.notification_timeout)
            with self._cond:
                current = item.generation == self._generation
            if current:
                self.log.record(
                    item.provider, item.target, item.url, item.kind, item.headers, item.body, answer, attempt
                )
            ok = answer.status is not None and 200 <= answer.status < 300
            if ok or not item.retryable(answer.status) or attempt > settings.push_retries:
                return
            if not self._pause(settings.push_retry_delay * 2 ** (attempt - 1), item.generation):
                return

    def _pause(self, seconds: float, generation: int) -> bool:
        """Sleep before a retry; False when a reset or shutdown came meanwhile."""
        with self._cond:
            self._cond.wait_for(lambda: self._stopping or self._generation != generation, timeout=seconds)
            return not self._stopping and self._generation == generation

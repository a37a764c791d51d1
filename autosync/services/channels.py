"""The receiver's side of change notifications: verify them cheaply, count them, queue their syncs.

`autosync webhooks` is on the open internet. Checking each notification against the database would
let a flood of forged ones (made-up channel ids, wrong secrets) cost a round trip each and starve the
real ones. So the receiver keeps the live channels (id, provider, secret hash) in memory, in a
`ChannelBook`: loaded whole when it connects, then kept current by the NOTIFY the database sends on
commit for every channel inserted, stopped or deleted (migration 0005). A forged notification is
refused from memory. Only one that names a live channel of the right provider with the right secret
reaches the database, where it is counted under a row lock and its sync queued in the same
transaction (so a notification that could not be queued is not recorded as taken either).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from autosync import metrics
from autosync.store.pg import ChannelFeed, PgStore

log = logging.getLogger("autosync.webhooks")

# Channels live in PostgreSQL (the receiver checks and counts them there): the PostgreSQL store.
_store = PgStore()

# Notification kinds that say something changed (Google resource states, Graph change types and
# the lifecycle events that need a resync); `sync` is only Google's handshake.
CHANGE_EVENTS = {"exists", "not_exists", "created", "updated", "deleted", "missed", "subscriptionRemoved",
                 "reauthorizationRequired"}
# Lifecycle events do something of their own in the `changed` task; plain changes of one channel in
# one delivery are one sync.
_OWN_TASK = {"subscriptionRemoved", "reauthorizationRequired"}
# Google's channel token is at most 256 characters, Graph's clientState 128; ours are 43.
MAX_SECRET = 256


class OurSideDown(Exception):
    """The channel list is not current (PostgreSQL unreachable): answer 503, the provider delivers again."""


def hash_secret(secret: str) -> bytes:
    """What is stored of a channel secret: SHA-256 (the secret is 256 random bits, so no slow hash is needed)."""
    return hashlib.sha256(secret.encode("utf-8")).digest()


@dataclass(frozen=True)
class Note:
    """One notification as delivered: channel, the secret it carries, its event, Google's message number."""

    channel_id: str
    secret: Any
    event: str
    number: int | None = None
    item: str | None = None  # Graph: the event the notification names (resourceData.id)


class ChannelBook:
    """The live channels, in memory, kept current from PostgreSQL's NOTIFY by a thread of its own."""

    def __init__(self, database_url: str, *, reload_every: float = 300.0) -> None:
        self._url = database_url
        self._reload_every = reload_every
        self._known: dict[str, tuple[int, bytes]] = {}
        self._live = False
        self._loaded = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def live(self) -> bool:
        """Whether the list is current (connected and loaded)."""
        return self._live

    def __len__(self) -> int:
        return len(self._known)

    def start(self, wait: float = 0.0) -> ChannelBook:
        """Follow the database from a daemon thread; wait up to ``wait`` seconds for the first load."""
        self._thread = threading.Thread(target=self._run, name="autosync-channel-book", daemon=True)
        self._thread.start()
        if wait:
            self._loaded.wait(wait)
        return self

    def stop(self) -> None:
        """Stop following (within about a second)."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def check(self, calendar_type: int, channel_id: str, secret: Any) -> str:
        """ok | unknown | forbidden, from memory; raises OurSideDown when an unknown id cannot be trusted."""
        entry = self._known.get(channel_id)
        if entry is None or entry[0] != calendar_type:
            # Also a Graph subscription named on /google (and the reverse): not a channel of that provider.
            if not self._live:
                raise OurSideDown("the channel list is not current")
            return "unknown"
        if not isinstance(secret, str) or len(secret) > MAX_SECRET:
            return "forbidden"
        return "ok" if hmac.compare_digest(entry[1], hash_secret(secret)) else "forbidden"

    def _run(self) -> None:
        pause = 0.5
        while not self._stop.is_set():
            try:
                with ChannelFeed(self._url) as feed:  # listens before the load: nothing in between is missed
                    self._load(feed)
                    pause = 0.5
                    self._follow(feed)
            except psycopg.Error as exc:
                if self._live or pause == 0.5:
                    log.warning("channel list not current: notifications for channels it lacks get 503 until "
                                "PostgreSQL is back", extra={"error": type(exc).__name__})
                self._live = False
                self._stop.wait(pause)
                pause = min(pause * 2, 5.0)
        self._live = False

    def _load(self, feed: ChannelFeed) -> None:
        self._known = {r["channelId"]: (int(r["calendarType"]), bytes(r["secretHash"])) for r in feed.all()}
        self._loaded_at = time.monotonic()
        self._live = True
        self._loaded.set()

    def _follow(self, feed: ChannelFeed) -> None:
        checked = time.monotonic()
        while not self._stop.is_set():
            ids = feed.changed(timeout=1.0, limit=1)
            if ids:  # then whatever else is already waiting, in one query
                ids += feed.changed(timeout=0.01, limit=1000)
                self._apply(feed, sorted(set(ids)))
            now = time.monotonic()
            if now - self._loaded_at > self._reload_every:
                self._load(feed)  # a safety net: rows removed without a trigger (TRUNCATE) are dropped
            elif now - checked > 10:
                feed.ping()  # a restarted server is noticed even when no NOTIFY comes
                checked = now

    def _apply(self, feed: ChannelFeed, ids: list[str]) -> None:
        rows = {r["channelId"]: r for r in feed.by_id(ids)}
        for channel_id in ids:
            row = rows.get(channel_id)
            if row is not None and row["live"]:
                self._known[channel_id] = (int(row["calendarType"]), bytes(row["secretHash"]))
            else:
                self._known.pop(channel_id, None)


Publish = Callable[[str, str, int], None]


def receive(book: ChannelBook, calendar_type: int, notes: list[Note], publish: Publish) -> list[str]:
    """Verify one delivery's notifications and queue their syncs; a verdict per note.

    Verdicts: accepted, replayed (a Google message number already taken), unknown, forbidden.
    Notifications of one channel in one delivery queue one sync (and one per lifecycle event).
    """
    verdicts = [book.check(calendar_type, n.channel_id, n.secret) for n in notes]
    wanted: dict[tuple[str, str], list[Any]] = {}  # (channel, kind) -> [event, count, highest number]
    for note, verdict in zip(notes, verdicts, strict=True):
        if verdict != "ok":
            continue
        key = (note.channel_id, note.event if note.event in _OWN_TASK else "*")
        entry = wanted.setdefault(key, [note.event, 0, None])
        entry[1] += 1
        if note.number is not None:
            entry[2] = note.number if entry[2] is None else max(entry[2], note.number)
    if not wanted:
        return metrics.notifications(calendar_type, notes, verdicts)
    _hint_series(notes, verdicts)
    outcome: dict[str, str] = {}
    with _store.unit(timeout=1.0) as tx:
        before = tx.take_messages(calendar_type, [(cid, e[0], e[1], e[2]) for (cid, _), e in wanted.items()])
        for (channel_id, _), (event, _count, number) in wanted.items():
            if channel_id not in before:
                outcome.setdefault(channel_id, "unknown")  # stopped, and the book did not hear of it yet
                continue
            prior = before[channel_id]
            if number is not None and prior is not None and number <= prior:
                outcome.setdefault(channel_id, "replayed")
                continue
            queued = event in CHANGE_EVENTS
            if queued:
                publish(channel_id, event, calendar_type)  # fails: the transaction (and the count) rolls back
                metrics.notification_queued(channel_id)
            outcome[channel_id] = "accepted"
            log.info("notification accepted", extra={"channel": channel_id, "event": event, "queued": queued})
    return metrics.notifications(calendar_type, notes, [outcome.get(n.channel_id, "unknown") if v == "ok" else v
                                                         for n, v in zip(notes, verdicts, strict=True)])


def _hint_series(notes: list[Note], verdicts: list[str]) -> None:
    """Keep the items verified "updated" notifications name (store: series_hint).

    Only Graph notifications name an item (resourceData.id); Google's name only the channel. Deleting
    one occurrence updates its series master (microsoft-graph-docs issue 5520) but may show in no
    delta round (PR 4501): the calendar's next round checks such a series itself (outlook_checks).
    Committed before the sync is queued, so the run it starts finds the hint.
    """
    named = [(n.channel_id, n.item) for n, v in zip(notes, verdicts, strict=True)
             if v == "ok" and n.event == "updated" and n.item]
    if named:
        with _store.unit(timeout=1.0) as tx:
            tx.hint_series(named)

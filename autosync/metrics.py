"""Recording metrics from workers and the receiver: counters and histograms kept in Redis.

Prometheus' multiprocess mode shares files between the processes of ONE host; autosync's workers run
on many hosts. So every recorded event becomes a few HINCRBY on one Redis hash in the limiter's Redis
(``Settings.redis``), sent as one pipelined round trip, and `autosync metrics` reads that hash at
scrape time (``autosync.metrics_server``). Counters survive worker restarts and add up across every
process and host; a Redis restart resets them, which Prometheus' rate() treats as a counter reset.

Recording is best effort: it never raises into the sync step that records, and after a Redis error
it stays quiet for a few seconds so a Redis outage does not add a timeout to every request.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import redis
import requests

from autosync.settings import Settings, get_settings

log = logging.getLogger(__name__)

KEY = "autosync:metrics"  # hash: "<series>|<label>=<value>,..." -> number
COOLDOWNS = "autosync:metrics:cooldowns:"  # + provider: zset of cool-down keys scored by expiry (unix ms)
NOTICE = "autosync:metrics:notice:"  # + "ch:<id>" / "cal:<id>": when the oldest unserved notification came
NOTICE_TTL = "86400"  # a notification nobody imported within a day is forgotten
FAN_OUT_LAST = "fan_out_last_timestamp_seconds"

PROVIDERS = {1: "google", 2: "outlook"}
# Histogram buckets (seconds), shared with the collector that turns them into Prometheus histograms.
REQUEST_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
RUN_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
NOTICE_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
HISTOGRAMS = {"run_duration_seconds": RUN_BUCKETS, "provider_request_seconds": REQUEST_BUCKETS,
              "notification_to_import_seconds": NOTICE_BUCKETS}
# run row push counters -> pushes_total outcome
PUSH_COUNTS = {"pushCreated": "created", "pushUpdated": "updated", "pushDeleted": "deleted", "pushFailed": "failed"}


def field(series: str, **labels: str) -> str:
    """The hash field of one series: its name and labels, values made safe for the encoding."""
    return series + "|" + ",".join(f"{k}={_safe(v)}" for k, v in labels.items())


def parse_field(name: str) -> tuple[str, dict[str, str]]:
    """(series, labels) of a hash field written by ``field``."""
    series, _, rest = name.partition("|")
    labels = dict(part.partition("=")[::2] for part in rest.split(",") if part)
    return series, labels


def _safe(value: object) -> str:
    return re.sub(r"[|,=\s]", "_", str(value))[:64]


class Batch:
    """The increments of one recorded event, sent together in one pipelined round trip."""

    def __init__(self) -> None:
        self.ints: dict[str, int] = {}
        self.floats: dict[str, float] = {}

    def count(self, series: str, n: int = 1, **labels: str) -> Batch:
        """Add ``n`` to a counter."""
        if n:
            self._add(field(series, **labels), int(n))
        return self

    def _add(self, key: str, n: int) -> None:
        self.ints[key] = self.ints.get(key, 0) + n

    def observe(self, series: str, value: float, **labels: str) -> Batch:
        """One histogram observation: its bucket (not cumulative: the collector sums), sum and count."""
        bounds = HISTOGRAMS[series]
        le = next((f"{b:g}" for b in bounds if value <= b), "+Inf")
        self._add(field(series + "_bucket", **labels, le=le), 1)
        self._add(field(series + "_count", **labels), 1)
        key = field(series + "_sum", **labels)
        self.floats[key] = self.floats.get(key, 0.0) + max(0.0, float(value))
        return self

    def send(self) -> None:
        """Write the batch (best effort)."""
        if not (self.ints or self.floats):
            return

        def write(client: redis.Redis) -> None:
            pipe = client.pipeline(transaction=False)
            for key, n in self.ints.items():
                pipe.hincrby(KEY, key, n)
            for key, x in self.floats.items():
                pipe.hincrbyfloat(KEY, key, x)
            pipe.execute()

        _best_effort(write)


# --- the Redis client and the best-effort guard -------------------------------------------------

_lock = threading.Lock()
_client: tuple[int, redis.Redis] | None = None  # (settings identity, client)
_quiet_until = 0.0
_last_warning = 0.0


def client() -> redis.Redis:
    """The Redis client metrics are recorded with: short timeouts, so recording never stalls a step."""
    global _client
    settings = get_settings()
    with _lock:
        if _client is None or _client[0] != id(settings):
            _client = (id(settings), redis.Redis.from_url(settings.redis, socket_timeout=0.5,
                                                          socket_connect_timeout=0.5, health_check_interval=30))
        return _client[1]


def _best_effort(write: Callable[[redis.Redis], Any]) -> Any:
    """Run a write; failures are logged (at most once a minute) and swallowed."""
    global _quiet_until, _last_warning
    now = time.monotonic()
    if now < _quiet_until:
        return None
    try:
        return write(client())
    except Exception as exc:  # a metric must never fail a sync step
        if isinstance(exc, redis.RedisError):
            _quiet_until = now + 5.0
        if now - _last_warning > 60:
            _last_warning = now
            log.warning("metrics not recorded", extra={"error": f"{type(exc).__name__}: {exc}"})
        return None


def _provider_of_key(key: str) -> str:
    """Limiter keys start with the provider: google:app, google:acct:X, outlook:mbx:X."""
    head = key.split(":", 1)[0]
    return head if head in ("google", "outlook") else "unknown"


# --- provider requests (the HTTP edge) ----------------------------------------------------------

# (method, path pattern after the API base, endpoint): a fixed set, never raw URLs or ids.
GOOGLE_ENDPOINTS = (
    ("POST", r"/calendars/[^/]+/events/watch", "events.watch"),
    ("GET", r"/calendars/[^/]+/events", "events.list"),
    ("POST", r"/calendars/[^/]+/events", "events.insert"),
    ("GET", r"/calendars/[^/]+/events/[^/]+", "events.get"),
    ("PATCH", r"/calendars/[^/]+/events/[^/]+", "events.patch"),
    ("DELETE", r"/calendars/[^/]+/events/[^/]+", "events.delete"),
    ("POST", r"/channels/stop", "channels.stop"),
)
# Graph links come back from Graph itself (nextLink, deltaLink): match its paths case-insensitively.
_ME = r"/(me|users/[^/]+)"
GRAPH_ENDPOINTS = (
    ("GET", _ME + r"(/calendars/[^/]+)?/calendarView/delta", "calendarView.delta"),
    ("GET", _ME + r"/events/[^/]+/instances", "events.instances"),
    ("GET", _ME + r"/events/[^/]+", "events.get"),
    ("PATCH", _ME + r"/events/[^/]+", "events.update"),
    ("DELETE", _ME + r"/events/[^/]+", "events.delete"),
    ("POST", _ME + r"(/calendars/[^/]+)?/events", "events.create"),
    ("POST", r"/subscriptions", "subscriptions.create"),
    ("PATCH", r"/subscriptions/[^/]+", "subscriptions.renew"),
    ("DELETE", r"/subscriptions/[^/]+", "subscriptions.delete"),
)


@lru_cache(maxsize=4)
def _routes(settings: Settings) -> list[tuple[str, str, tuple[tuple[str, re.Pattern[str], str], ...] | None]]:
    """(URL prefix, provider, endpoint table; None for a token URL), longest prefix first."""
    def table(rows: Iterable[tuple[str, str, str]]) -> tuple[tuple[str, re.Pattern[str], str], ...]:
        return tuple((m, re.compile(p + r"/?$", re.IGNORECASE), name) for m, p, name in rows)

    found = [(settings.google_token_url, "google", None), (settings.outlook_token_url, "outlook", None),
             (settings.google_api_url, "google", table(GOOGLE_ENDPOINTS)),
             (settings.graph_api_url, "outlook", table(GRAPH_ENDPOINTS))]
    return sorted(found, key=lambda r: -len(r[0]))


def classify(method: str, url: str) -> tuple[str, str]:
    """(provider, endpoint) of a request URL, from a fixed set of names."""
    bare = url.split("?", 1)[0]
    for prefix, provider, table in _routes(get_settings()):
        if bare == prefix or bare.startswith(prefix.rstrip("/") + "/"):
            if table is None:
                return provider, "token" if bare == prefix else "other"
            path = urlsplit(bare).path[len(urlsplit(prefix).path.rstrip("/")):]
            for m, pattern, name in table:
                if m == method.upper() and pattern.match(path):
                    return provider, name
            return provider, "other"
    return "unknown", "other"


def timed_send(send: Callable[..., requests.Response], method: str, url: str, *args: Any) -> requests.Response:
    """Call ``send(method, url, *args)`` and record the request: provider, endpoint, status, seconds."""
    started = time.perf_counter()
    status = "error"
    try:
        resp = send(method, url, *args)
        status = str(resp.status_code)
        return resp
    except requests.Timeout:
        status = "timeout"
        raise
    except requests.ConnectionError:
        status = "connection_error"
        raise
    finally:
        request(method, url, status, time.perf_counter() - started)


def request(method: str, url: str, status: str, seconds: float) -> None:
    """Count one provider request (an attempt on the wire) and its duration."""
    try:
        provider, endpoint = classify(method, url)
        Batch().count("provider_requests_total", provider=provider, endpoint=endpoint, status=status) \
            .observe("provider_request_seconds", seconds, provider=provider, endpoint=endpoint).send()
    except Exception:  # noqa: S110 - a metric must never fail a request
        pass


# --- rate limits ----------------------------------------------------------------------------------

# Which limit made a request wait, decided where the state is (KEYS: cool-down keys, bucket keys, the
# metrics hash; ARGV: number of cool-down keys, provider, each bucket's count, each bucket's scope).
# A cool-down wins, as in the limiter's own script; then the first full bucket.
_WAIT_SCOPE = """
local ncool = tonumber(ARGV[1])
local nlim = #KEYS - 1 - ncool
local scope = 'unknown'
for i = 1, ncool do
  if redis.call('PTTL', KEYS[i]) > 0 then scope = 'cooldown' break end
end
if scope == 'unknown' then
  for i = 1, nlim do
    if redis.call('ZCARD', KEYS[ncool + i]) >= tonumber(ARGV[2 + i]) then scope = ARGV[2 + nlim + i] break end
  end
end
redis.call('HINCRBY', KEYS[#KEYS], 'rate_limit_waits_total|provider=' .. ARGV[2] .. ',scope=' .. scope, 1)
return scope
"""


def _scope_of_limit(key: str) -> str:
    """google:app -> app; google:acct:X / outlook:mbx:X -> account."""
    return "app" if key.endswith(":app") else "account"


def rate_limit_wait(limiter: Any, limits: Iterable[Any], cooldowns: Iterable[str]) -> None:
    """Count a request that had to wait for the cluster-wide limiter, by the limit that held it."""
    active = [lim for lim in limits if lim.count > 0]
    cools = list(cooldowns)
    keys = [f"{limiter.prefix}:cooldown:{k}" for k in cools] + [f"{limiter.prefix}:bucket:{lim.key}"
                                                                for lim in active] + [KEY]
    provider = _provider_of_key((cools or [lim.key for lim in active] or ["unknown"])[0])
    args = [len(cools), provider, *[lim.count for lim in active], *[_scope_of_limit(lim.key) for lim in active]]
    # The limiter's own client: the keys it inspects live in the limiter's database.
    _best_effort(lambda _: limiter.redis.eval(_WAIT_SCOPE, len(keys), *keys, *args))


def slot_wait(key: str) -> None:
    """Count a request that waited for a concurrent-request slot (Outlook: per mailbox)."""
    Batch().count("rate_limit_waits_total", provider=_provider_of_key(key), scope="concurrency").send()


def cooldown_started(key: str, seconds: float) -> None:
    """Note a cool-down the provider imposed (Retry-After), so the collector can count active ones."""
    zset = COOLDOWNS + _provider_of_key(key)
    now_ms = int(time.time() * 1000)

    def write(client: redis.Redis) -> None:
        pipe = client.pipeline(transaction=False)
        pipe.zremrangebyscore(zset, "-inf", now_ms)
        pipe.zadd(zset, {key: now_ms + int(seconds * 1000)})
        pipe.pexpire(zset, int(seconds * 1000) + 60_000)
        pipe.execute()

    _best_effort(write)


# --- runs, conflicts, fan-out -------------------------------------------------------------------

def run_finished(run: Mapping[str, Any]) -> None:
    """A run closed: its outcome and duration, the items it skipped and the pushes it made."""
    try:
        provider = PROVIDERS.get(run.get("calendarType") or 0, "unknown")
        batch = Batch().count("runs_total", provider=provider, outcome=str(run.get("outcome")))
        if run.get("finishedAt") and run.get("startedAt"):
            seconds = (run["finishedAt"] - run["startedAt"]).total_seconds()
            batch.observe("run_duration_seconds", seconds, provider=provider)
        batch.count("skipped_items_total", int(run.get("eventsSkipped") or 0), provider=provider)
        for column, outcome in PUSH_COUNTS.items():
            batch.count("pushes_total", int(run.get(column) or 0), provider=provider, outcome=outcome)
        batch.send()
    except Exception:  # noqa: S110 - a metric must never fail a run
        pass


def conflict(calendar_type: int, winner: str) -> None:
    """Both sides changed one event; ``winner`` is app or provider."""
    Batch().count("conflicts_total", provider=PROVIDERS.get(calendar_type, "unknown"), winner=winner).send()


def fanned_out(runs: int) -> None:
    """The beat's fan-out ran and opened ``runs`` runs (its timestamp feeds the no-fan-out alert)."""
    def write(client: redis.Redis) -> None:
        pipe = client.pipeline(transaction=False)
        pipe.hincrby(KEY, field("fan_outs_total"), 1)
        pipe.hincrby(KEY, field("fan_out_runs_total"), int(runs))
        pipe.hset(KEY, field(FAN_OUT_LAST), repr(time.time()))
        pipe.execute()

    _best_effort(write)


# --- change notifications -----------------------------------------------------------------------

# Redis's clock, not the callers': the receiver and the workers may run on different hosts.
_NOTE = """
local t = redis.call('TIME')
redis.call('SET', KEYS[1], t[1] .. '.' .. string.format('%06d', tonumber(t[2])), 'NX', 'EX', ARGV[1])
"""
_ROUTE = """
local t = redis.call('GET', KEYS[1])
if not t then return 0 end
redis.call('DEL', KEYS[1])
for i = 2, #KEYS do redis.call('SET', KEYS[i], t, 'NX', 'EX', ARGV[1]) end
return #KEYS - 1
"""
_TAKE = """
local t = redis.call('GET', KEYS[1])
if not t then return false end
redis.call('DEL', KEYS[1])
local now = redis.call('TIME')
return tostring(tonumber(now[1]) + tonumber(now[2]) / 1e6 - tonumber(t))
"""


def notifications(calendar_type: int, notes: Sequence[Any], verdicts: list[str]) -> list[str]:
    """Count the receiver's verdict on each notification of one delivery; returns ``verdicts`` as given."""
    try:
        provider = PROVIDERS.get(calendar_type, "unknown")
        batch = Batch()
        for verdict in verdicts[:len(notes)]:
            batch.count("notifications_total", provider=provider, verdict=str(verdict))
        batch.send()
    except Exception:  # noqa: S110 - a metric must never fail the receiver
        pass
    return verdicts


def notification_queued(channel_id: str) -> None:
    """A verified change queued a sync: start the notification clock of its channel (the oldest one wins)."""
    _best_effort(lambda c: c.eval(_NOTE, 1, NOTICE + "ch:" + channel_id, NOTICE_TTL))


def notification_routed(channel_id: str, calendar_ids: Iterable[int]) -> None:
    """Hand the channel's oldest unserved notification time to the calendars it covers."""
    keys = [NOTICE + "ch:" + channel_id] + [NOTICE + f"cal:{c}" for c in calendar_ids]
    if len(keys) > 1:
        _best_effort(lambda c: c.eval(_ROUTE, len(keys), *keys, NOTICE_TTL))


def imported(calendar_type: int, calendar_id: int, notifications: bool) -> None:
    """A calendar's changes are committed: observe the time since the notification that asked for them.

    ``notifications``: whether change notifications are on; off, there is nothing to measure and no
    round trip is made.
    """
    if not notifications:
        return
    elapsed = _best_effort(lambda c: c.eval(_TAKE, 1, NOTICE + f"cal:{calendar_id}"))
    if elapsed is not None:
        seconds = float(elapsed.decode() if isinstance(elapsed, bytes) else elapsed)
        Batch().observe("notification_to_import_seconds", seconds,
                        provider=PROVIDERS.get(calendar_type, "unknown")).send()

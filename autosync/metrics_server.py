"""`autosync metrics`: the Prometheus endpoint, computed at scrape time from PostgreSQL and Redis.

Database series (calendar health, sync lag, outbox, channels) come from a few aggregate queries run
in one read-only snapshot per scrape; worker counters and histograms come from the Redis hash that
``autosync.metrics`` writes. The exposition is prometheus_client's, from a custom collector.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import psycopg
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from psycopg.rows import dict_row

from autosync import metrics as rec
from autosync.settings import Settings
from autosync.store import metrics as sql

log = logging.getLogger(__name__)

PROVIDERS = ("google", "outlook")
STATES = ("ok", "failing", "needs_reauth", "blocked", "inactive", "never_synced")
SYNCING = ("ok", "failing", "blocked", "never_synced")  # states whose lag is measured
LAG_BUCKETS = (60.0, 300.0, 900.0, 1800.0, 3600.0, 10800.0, 21600.0, 43200.0, 86400.0, 259200.0, 604800.0)

# Worker counters kept in Redis: series -> (help, label names, label values always exported as 0).
COUNTERS: dict[str, tuple[str, tuple[str, ...], dict[str, tuple[str, ...]]]] = {
    "runs_total": ("Runs finished, by outcome (ok, failed, needs_reauth, blocked).", ("provider", "outcome"),
                   {"outcome": ("ok", "failed", "needs_reauth", "blocked")}),
    "provider_requests_total": ("Provider HTTP requests on the wire (each retry counts), by endpoint and HTTP "
                                "status (or timeout / connection_error).", ("provider", "endpoint", "status"), {}),
    "rate_limit_waits_total": ("Times a request was held by the cluster-wide limiter, by what held it: app or "
                               "account quota, a provider cool-down, or the mailbox concurrency limit.",
                               ("provider", "scope"), {"scope": ("app", "account", "cooldown", "concurrency")}),
    "pushes_total": ("App changes pushed to the provider, by outcome (failed includes deferred retries).",
                     ("provider", "outcome"), {"outcome": ("created", "updated", "deleted", "failed")}),
    "notifications_total": ("Change notifications received, by verdict (accepted, unknown channel, forbidden: "
                            "wrong secret, replayed: a Google message number already taken).",
                            ("provider", "verdict"), {"verdict": ("accepted", "unknown", "forbidden", "replayed")}),
    "conflicts_total": ("Events changed on both sides, by the side that won.", ("provider", "winner"),
                        {"winner": ("app", "provider")}),
    "skipped_items_total": ("Provider items that could not be normalized and were skipped (see sync_skip).",
                            ("provider",), {}),
    "fan_outs_total": ("Beat fan-outs run.", (), {}),
    "fan_out_runs_total": ("Runs opened by beat fan-outs.", (), {}),
}
HISTOGRAM_HELP: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "run_duration_seconds": ("Wall time of a run, from opening to finishing.", ("provider",), True),
    "provider_request_seconds": ("Duration of provider HTTP requests on the wire.", ("provider", "endpoint"),
                                 False),
    "notification_to_import_seconds": ("From a change notification's arrival at the receiver to the commit of "
                                       "the import it caused.", ("provider",), True),
}


def _kind(value: Any) -> str:
    return rec.PROVIDERS.get(int(value or 0), "unknown")


class Collector:
    """Builds every autosync series at scrape time."""

    def __init__(self, settings: Settings, redis_client: Any | None = None) -> None:
        self.settings = settings
        self.redis = redis_client
        self._conn: psycopg.Connection[dict[str, Any]] | None = None
        self._lock = threading.Lock()  # one scrape at a time on the connection

    def describe(self) -> list[Metric]:
        """Nothing up front: registration must not run the queries."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Every series, with the health of both sources."""
        up = GaugeMetricFamily("autosync_metrics_source_up", "Whether the last scrape could read the source.",
                               labels=["source"])
        took = GaugeMetricFamily("autosync_metrics_source_seconds", "Time the last scrape spent reading the source.",
                                 labels=["source"])
        for source, read in (("postgresql", self._database), ("redis", self._redis)):
            started = time.perf_counter()
            try:
                families = list(read())
                ok = 1.0
            except Exception as exc:  # one source down must not hide the other's series
                log.warning("metrics source unavailable", extra={"source": source,
                                                                 "error": f"{type(exc).__name__}: {exc}"})
                families, ok = [], 0.0
            up.add_metric([source], ok)
            took.add_metric([source], time.perf_counter() - started)
            yield from families
        yield from self._config()
        yield up
        yield took

    # --- PostgreSQL ---------------------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[dict[str, Any]]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self.settings.database_url, connect_timeout=5, row_factory=dict_row,
                                         # No JIT: compiling would cost more than these scans.
                                         options="-c statement_timeout=10000 -c jit=off")
            self._conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ  # one snapshot per scrape
            self._conn.read_only = True
        return self._conn

    def _database(self) -> Iterator[Metric]:
        s = self.settings
        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction():
                    cals = sql.calendars(conn, LAG_BUCKETS, 3 * s.sync_interval,
                                         3 * max(s.watch_safety_poll, s.sync_interval), time.time())
                    outbox, channels, running = sql.outbox(conn), sql.channels(conn), sql.runs_open(conn)
            except psycopg.Error:
                conn.close()
                raise
        yield from _calendar_families(cals)
        yield _gauge("autosync_outbox_pending", "App changes waiting to be pushed (active calendars).",
                     {_kind(r["kind"]): r["pending"] for r in outbox})
        yield _gauge("autosync_outbox_oldest_seconds", "Age of the oldest app change waiting to be pushed.",
                     {_kind(r["kind"]): r["oldest"] for r in outbox})
        yield _gauge("autosync_channels", "Live change-notification channels (Google channels, Graph subscriptions).",
                     {_kind(r["kind"]): r["live"] for r in channels})
        yield _gauge("autosync_channels_expired", "Channels past their expiry that were neither renewed nor stopped: "
                     "lost notification channels.", {_kind(r["kind"]): r["expired"] for r in channels})
        yield _gauge("autosync_runs_in_progress", "Runs open now.", {_kind(r["kind"]): r["open"] for r in running})

    # --- Redis --------------------------------------------------------------------------------

    def _redis(self) -> Iterator[Metric]:
        client = self.redis or rec.client()
        now_ms = int(time.time() * 1000)
        pipe = client.pipeline(transaction=False)
        pipe.hgetall(rec.KEY)
        for provider in PROVIDERS:
            pipe.zremrangebyscore(rec.COOLDOWNS + provider, "-inf", now_ms)
            pipe.zcard(rec.COOLDOWNS + provider)
        answers = pipe.execute()
        values: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
        for raw, number in answers[0].items():
            series, labels = rec.parse_field(raw.decode() if isinstance(raw, bytes) else raw)
            values[series][tuple(labels.items())] = float(number)
        yield from _counter_families(values)
        yield from _histogram_families(values)
        yield _gauge("autosync_cooldowns_active", "Accounts, mailboxes or apps the provider told autosync to back "
                     "off from (Retry-After) right now.",
                     {p: answers[2 + 2 * i] for i, p in enumerate(PROVIDERS)})
        last = values.get(rec.FAN_OUT_LAST, {}).get(())
        if last is not None:
            g = GaugeMetricFamily("autosync_fan_out_last_timestamp_seconds", "When the beat's fan-out last ran "
                                  "(unix time).")
            g.add_metric([], last)
            yield g

    def _config(self) -> Iterator[Metric]:
        s = self.settings
        for name, text, value in (
                ("autosync_sync_interval_seconds", "AUTOSYNC_SYNC_INTERVAL: seconds between fan-outs.",
                 s.sync_interval),
                ("autosync_watch_safety_poll_seconds", "AUTOSYNC_WATCH_SAFETY_POLL: a watched calendar is polled at "
                 "least this often.", s.watch_safety_poll),
                ("autosync_notifications_enabled", "1 when change notifications are on (AUTOSYNC_WEBHOOK_URL set).",
                 int(s.watch_enabled))):
            g = GaugeMetricFamily(name, text)
            g.add_metric([], float(value))
            yield g


def _gauge(name: str, text: str, by_provider: dict[str, Any]) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, text, labels=["provider"])
    for provider in sorted(set(PROVIDERS) | set(by_provider)):
        g.add_metric([provider], float(by_provider.get(provider) or 0))
    return g


def _state(row: dict[str, Any]) -> str:
    """A calendar's state, first match wins: inactive, needs_reauth, blocked, failing, never_synced, ok."""
    if not row["active"]:
        return "inactive"
    if row["reauth"]:
        return "needs_reauth"
    if row["outcome"] in ("blocked", "failed"):
        return "blocked" if row["outcome"] == "blocked" else "failing"
    return "never_synced" if row["never"] else "ok"


def _calendar_families(rows: Iterable[dict[str, Any]]) -> Iterator[Metric]:
    states: dict[tuple[str, str], int] = defaultdict(int)
    watched: dict[str, int] = defaultdict(int)
    watch_errors: dict[str, int] = defaultdict(int)
    stale: dict[str, int] = defaultdict(int)
    lag_max: dict[str, float] = defaultdict(float)
    lag_sum: dict[str, float] = defaultdict(float)
    buckets: dict[str, list[int]] = defaultdict(lambda: [0] * (len(LAG_BUCKETS) + 1))
    for r in rows:
        p, n, state = _kind(r["kind"]), int(r["n"]), _state(r)
        states[(p, state)] += n
        if state != "inactive":
            watched[p] += n if r["watched"] else 0
            watch_errors[p] += n if r["watch_error"] else 0
        if state in SYNCING:
            stale[p] += int(r["stale"])
            lag_max[p] = max(lag_max[p], float(r["lag_max"] or 0))
            lag_sum[p] += float(r["lag_sum"] or 0)
            # width_bucket: 0 below the first bound, i for [bound i-1, bound i), len+... above the last.
            # A lag equal to a bound belongs to that bound's bucket (le), close enough at second scale.
            buckets[p][min(int(r["bucket"]), len(LAG_BUCKETS))] += n
    g = GaugeMetricFamily("autosync_calendars", "Linked calendars by state: ok, failing (last run failed), "
                          "needs_reauth, blocked (mass-delete guard), inactive (switched off), never_synced.",
                          labels=["provider", "state"])
    for p in PROVIDERS:
        for state in STATES:
            g.add_metric([p, state], float(states.get((p, state), 0)))
    yield g
    yield _gauge("autosync_calendars_watched", "Active calendars covered by a live change-notification channel.",
                 watched)
    yield _gauge("autosync_watch_errors", "Active calendars whose last attempt to watch them failed.", watch_errors)
    yield _gauge("autosync_calendars_stale", "Calendars not synced successfully for 3 sync intervals (watched: "
                 "3 safety polls), among those that should sync (not inactive, not waiting for re-auth).", stale)
    yield _gauge("autosync_sync_lag_max_seconds", "Largest now - last successful sync among calendars that should "
                 "sync (a never-synced calendar counts from when it was linked).", lag_max)
    h = GaugeHistogramMetricFamily("autosync_sync_lag_seconds", "Distribution of now - last successful sync over "
                                   "calendars that should sync (a snapshot at scrape time).", labels=["provider"])
    for p in PROVIDERS:
        counts = buckets[p]
        cumulative, running = [], 0
        for bound, n in zip((*(f"{b:g}" for b in LAG_BUCKETS), "+Inf"), counts, strict=True):
            running += n
            cumulative.append((bound, float(running)))
        h.add_metric([p], cumulative, gsum_value=lag_sum[p])
    yield h


def _counter_families(values: dict[str, dict[tuple[tuple[str, str], ...], float]]) -> Iterator[Metric]:
    for series, (text, labels, zeros) in COUNTERS.items():
        c = CounterMetricFamily("autosync_" + series.removesuffix("_total"), text, labels=list(labels))
        found = dict(values.get(series, {}))
        for combo in _zero_combos(labels, zeros):
            found.setdefault(combo, 0.0)
        for key, value in sorted(found.items()):
            c.add_metric([dict(key).get(name, "") for name in labels], value)
        yield c


def _zero_combos(labels: tuple[str, ...], zeros: dict[str, tuple[str, ...]]) -> list[tuple[tuple[str, str], ...]]:
    """Label sets exported as 0 before anything happened, so rate() and alerts see the series at once."""
    if not labels:
        return [()]
    if set(labels) - {"provider"} - set(zeros):
        return []  # an open label (endpoint, status): no zeros
    combos: list[dict[str, str]] = [{"provider": p} for p in PROVIDERS]
    for name, options in zeros.items():
        combos = [{**c, name: o} for c in combos for o in options]
    return [tuple((name, c[name]) for name in labels) for c in combos]


def _histogram_families(values: dict[str, dict[tuple[tuple[str, str], ...], float]]) -> Iterator[Metric]:
    for series, bounds in rec.HISTOGRAMS.items():
        text, labels, zero = HISTOGRAM_HELP[series]
        h = HistogramMetricFamily("autosync_" + series, text, labels=list(labels))
        per: dict[tuple[str, ...], dict[str, float]] = defaultdict(dict)
        for key, n in values.get(series + "_bucket", {}).items():
            d = dict(key)
            per[tuple(d.get(name, "") for name in labels)][d.get("le", "+Inf")] = n
        sums = {tuple(dict(k).get(name, "") for name in labels): v for k, v in values.get(series + "_sum", {}).items()}
        if zero:
            for p in PROVIDERS:
                per.setdefault((p,), {})
        for label_values, by_le in sorted(per.items()):
            running, cumulative = 0.0, []
            for bound in (*(f"{b:g}" for b in bounds), "+Inf"):
                running += by_le.get(bound, 0.0)
                cumulative.append((bound, running))
            h.add_metric(list(label_values), cumulative, sum_value=sums.get(label_values, 0.0))
        yield h


# --- serving ------------------------------------------------------------------------------------

class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log: Prometheus scrapes every few seconds."""


def wsgi_app(registry: CollectorRegistry) -> Callable[..., Iterable[bytes]]:
    """GET /metrics (Prometheus text format), GET /healthz; everything else 404."""
    metrics_app = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "").rstrip("/")
        if path == "/metrics":
            return list(metrics_app(environ, start_response))
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok"]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"autosync serves Prometheus metrics at /metrics\n"]

    return app


def usable_port(host: str, port: int) -> int:
    """``port`` when it can be bound on ``host``, else a free one (`autosync run` must not fail on it)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            s.bind((host, 0))
        return int(s.getsockname()[1])


def announce(host: str, port: int) -> str:
    """The line `autosync run` prints: where the metrics are, and how to watch the faults move them."""
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}/metrics"
    return (f"Prometheus metrics on {url} — watch runs, requests by status and limiter waits move: "
            f"curl -s {url} | grep -E '^autosync_(runs|provider_requests|rate_limit_waits)_total'")


class MetricsServer:
    """The metrics endpoint on a host and port (0: a free one), from a thread or the foreground."""

    def __init__(self, settings: Settings, host: str, port: int) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = Collector(settings)
        self.registry.register(self.collector)  # type: ignore[arg-type]
        self.server = make_server(host, port, wsgi_app(self.registry), server_class=ThreadingWSGIServer,
                                  handler_class=_QuietHandler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The metrics URL."""
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/metrics"

    def start(self) -> MetricsServer:
        """Serve from a daemon thread."""
        self._thread = threading.Thread(target=self.server.serve_forever, name="autosync-metrics", daemon=True)
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

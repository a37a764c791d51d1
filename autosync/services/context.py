"""Per-process wiring (the application context ``App``): settings, the rate limiter and one adapter per
provider, built once. Not to be confused with a run's own data, ``store.runs.RunContext``."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import redis

from autosync.model import Provider
from autosync.providers import Adapter
from autosync.providers.google import GoogleProvider
from autosync.providers.http import HttpEdge, Policy
from autosync.providers.outlook import OutlookProvider
from autosync.ratelimit import RateLimiter
from autosync.settings import Settings, get_settings
from autosync.store.api import Store
from autosync.store.pg import PgStore


@dataclass(frozen=True)
class App:
    """What services need from the outside world (passed as ``app``; a run's row is ``run``)."""

    settings: Settings
    limiter: RateLimiter
    google: GoogleProvider
    outlook: OutlookProvider
    store: Store

    def provider(self, kind: int) -> Adapter:
        """The adapter for a calendarType."""
        if kind == Provider.GOOGLE:
            return self.google
        if kind == Provider.OUTLOOK:
            return self.outlook
        raise ValueError(f"unknown calendarType {kind}")


# Kept for code written against the earlier name (other branches merge into this one).
Context = App

_ctx: App | None = None
_pid: int | None = None
_lock = threading.Lock()


def build(settings: Settings) -> App:
    """Wire a context from settings."""
    limiter = RateLimiter(redis.Redis.from_url(settings.redis, health_check_interval=30))
    edge = HttpEdge(Policy(settings.http_connect_timeout, settings.http_read_timeout, settings.http_retries,
                           settings.http_backoff_cap, settings.max_inline_wait), limiter)
    return App(settings, limiter, GoogleProvider(settings, edge), OutlookProvider(settings, edge), PgStore())


def context() -> App:
    """The process-wide context (re-built after a fork)."""
    global _ctx, _pid
    with _lock:
        if _ctx is None or _pid != os.getpid():
            _ctx = build(get_settings())
            _pid = os.getpid()
        return _ctx

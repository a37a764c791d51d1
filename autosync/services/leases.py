"""Leases around provider calls: claimed and released in short transactions, never held open."""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from autosync.services.context import App

log = logging.getLogger(__name__)


@contextmanager
def held(app: App, key: str, *, ttl: float, wait: float) -> Iterator[bool]:
    """Hold the lease on ``key`` inside the block (True), or False when it stayed taken for ``wait`` s.

    No database connection is kept while the block runs: the claim and the release are their own
    transactions. ``ttl`` must outlast the block (a holder that dies leaves the key taken that long).
    """
    holder = uuid.uuid4().hex
    deadline = time.monotonic() + wait
    # Short polls: a provider answers a refresh in 100-300 ms, and a sleeping waiter keeps its worker
    # slot (a whole process under prefork). Capped so a crowd of waiters does not load PostgreSQL.
    pause = 0.025
    while True:
        with app.store.unit() as tx:
            if tx.claim_lease(key, holder, ttl):
                break
        if time.monotonic() >= deadline:
            yield False
            return
        time.sleep(min(pause * random.uniform(0.5, 1.5), max(0.0, deadline - time.monotonic())))
        pause = min(pause * 2, 0.1)
    try:
        yield True
    finally:
        release_quietly(app, key, holder)


def release_quietly(app: App, key: str, holder: str) -> None:
    """Release a lease in a transaction of its own; when PostgreSQL is away, it expires on its own."""
    try:
        with app.store.unit() as tx:
            tx.release_lease(key, holder)
    except psycopg.Error:
        log.warning("could not release a lease; it expires on its own", extra={"lease": key})

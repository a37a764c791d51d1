"""Test harness: a throwaway PostgreSQL database and Redis databases per session, the provider
emulator on a free port, and a real Celery worker (threads pool) running the real tasks.

The environment is set here, before anything reads autosync's settings.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from autosync.embedded import pid_alive

PG_ADMIN = os.environ.get("AUTOSYNC_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_HOST = os.environ.get("AUTOSYNC_TEST_REDIS", "redis://127.0.0.1:6379")
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


OWNER_KEY = "autosync-test:owner"


def claim_redis_db(exclude: tuple[int, ...] = ()) -> int:
    """A Redis database no other live test session uses (several sessions may run at once)."""
    for number in range(15, 0, -1):
        if number in exclude:
            continue
        client = redis.Redis.from_url(f"{REDIS_HOST}/{number}")
        owner = client.get(OWNER_KEY)
        if owner is not None and pid_alive(int(owner)):
            continue
        if owner is not None:
            client.delete(OWNER_KEY)
        if client.set(OWNER_KEY, os.getpid(), nx=True, ex=6 * 3600):
            client.flushdb()
            client.set(OWNER_KEY, os.getpid(), ex=6 * 3600)
            return number
    raise RuntimeError("no free Redis database for this test session")


DB_NAME = f"autosync_test_{uuid.uuid4().hex[:10]}"
EMULATOR_PORT = _free_port()
_BROKER_DB = claim_redis_db()
OPS_REDIS_DB = claim_redis_db(exclude=(_BROKER_DB,))
_EMU = f"http://127.0.0.1:{EMULATOR_PORT}"
os.environ.update({
    "AUTOSYNC_DATABASE_URL": PG_ADMIN.rsplit("/", 1)[0] + "/" + DB_NAME,
    "AUTOSYNC_BROKER_URL": f"{REDIS_HOST}/{_BROKER_DB}",
    "AUTOSYNC_REDIS_URL": f"{REDIS_HOST}/{_BROKER_DB}",
    "MIPLANIT_GOOGLE_CLIENT_ID": "google-client-id",
    "MIPLANIT_GOOGLE_CLIENT_SECRET": "google-secret",
    "MIPLANIT_OUTLOOK_CLIENT_ID": "outlook-client-id",
    "MIPLANIT_OUTLOOK_CLIENT_SECRET": "outlook-secret",
    "MIPLANIT_OUTLOOK_SCOPE": "offline_access https://graph.microsoft.com/Calendars.ReadWrite",
    "AUTOSYNC_GOOGLE_TOKEN_URL": f"{_EMU}/google/token",
    "AUTOSYNC_GOOGLE_API_URL": f"{_EMU}/google/calendar/v3",
    "AUTOSYNC_OUTLOOK_TOKEN_URL": f"{_EMU}/microsoft/common/oauth2/v2.0/token",
    "AUTOSYNC_GRAPH_API_URL": f"{_EMU}/graph/v1.0",
    "AUTOSYNC_HTTP_READ_TIMEOUT": "3",
    "AUTOSYNC_HTTP_CONNECT_TIMEOUT": "2",
    "AUTOSYNC_HTTP_BACKOFF_CAP": "0.5",
    "AUTOSYNC_TASK_BACKOFF_CAP": "2",
    "AUTOSYNC_NOTIFICATION_SENDER": "log",
    # Outlook rounds of several delta pages are what many tests are about (a series spread over pages,
    # a master on a later page than its occurrences): they were written for 100 entries a page, the
    # default before it became 1000 (issue 16). Google tests run with the default page size.
    "AUTOSYNC_OUTLOOK_PAGE_SIZE": "100",
    # The broker of worker *processes* started by operations tests (see tests/e2e/procs.py).
    "AUTOSYNC_TEST_OPS_BROKER": f"{REDIS_HOST}/{OPS_REDIS_DB}",
})

TABLES = ("fan_out", "sync_pending_delete",
          "push_channel", "temp_log", "sync_conflict", "event_outbox", "notification", "sync_skip", "sync_seen",
          "sync_page", "sync_run", "sync_request", "non_reg_user_share", "cal_event_share", "cal_event", "calendar",
          "user_main")


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh database with the schema, dropped after the session."""
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    url = os.environ["AUTOSYNC_DATABASE_URL"]
    from autosync.store.migrate import upgrade

    upgrade(url, report=lambda _: None)
    yield url
    from autosync.store.db import close_pool

    close_pool()
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


@pytest.fixture(scope="session")
def emulator() -> Iterator[object]:
    """The provider emulator, served over real HTTP for the whole session."""
    from autosync.emulator.server import Emulator

    emu = Emulator().start("127.0.0.1", EMULATOR_PORT)
    yield emu
    emu.stop()


@pytest.fixture(scope="session")
def celery_worker_session(database_url: str, emulator: object) -> Iterator[object]:
    """A real Celery worker (threads pool) consuming every autosync queue of the test broker."""
    from celery.contrib.testing.worker import start_worker

    from autosync.celery import app

    app.control.purge()
    with start_worker(app, pool="threads", concurrency=8, perform_ping_check=False, loglevel="WARNING",
                      shutdown_timeout=30) as worker:
        yield worker


@pytest.fixture()
def db(database_url: str) -> Iterator[psycopg.Connection]:
    """A clean database (every table emptied) and an autocommit connection to it."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE " + ", ".join(TABLES) + " RESTART IDENTITY CASCADE")
        yield conn


@pytest.fixture()
def limits_redis() -> Iterator[redis.Redis]:
    """The Redis database for limits and locks, with autosync's keys removed (the broker's stay)."""
    client = redis.Redis.from_url(os.environ["AUTOSYNC_REDIS_URL"])
    keys = list(client.scan_iter("autosync:*", count=1000))
    if keys:
        client.delete(*keys)
    yield client
    client.close()


@pytest.fixture(scope="session", autouse=True)
def _release_redis_dbs() -> Iterator[None]:
    yield
    for number in (_BROKER_DB, OPS_REDIS_DB):
        client = redis.Redis.from_url(f"{REDIS_HOST}/{number}")
        if client.get(OWNER_KEY) == str(os.getpid()).encode():
            client.flushdb()


@pytest.fixture()
def emu(emulator: object) -> Iterator[object]:
    """An admin client to an emptied emulator."""
    from autosync.emulator.client import EmulatorClient

    client = EmulatorClient(emulator.admin_url)  # type: ignore[attr-defined]
    client.reset()
    yield client


@pytest.fixture()
def worker(celery_worker_session: object, db: psycopg.Connection, limits_redis: redis.Redis,
           emu: object) -> object:
    """The running worker, with clean database, Redis limits and emulator."""
    return celery_worker_session


@pytest.fixture()
def shared_dir() -> Path:
    """../shared beside the repository; tests that need it skip when it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent: provider samples and contract are not available here")
    return SHARED

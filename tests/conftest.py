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

PG_ADMIN = os.environ.get("AUTOSYNC_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_HOST = os.environ.get("AUTOSYNC_TEST_REDIS", "redis://127.0.0.1:6379")
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _redis_dbs() -> tuple[int, int]:
    # A pair of Redis databases per xdist worker: broker, and limits/locks.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    n = int(worker[2:]) if worker[2:].isdigit() else 0
    return 10 + 2 * n, 11 + 2 * n


DB_NAME = f"autosync_test_{uuid.uuid4().hex[:10]}"
EMULATOR_PORT = _free_port()
_BROKER_DB, _LIMITS_DB = _redis_dbs()
_EMU = f"http://127.0.0.1:{EMULATOR_PORT}"
os.environ.update({
    "AUTOSYNC_DATABASE_URL": PG_ADMIN.rsplit("/", 1)[0] + "/" + DB_NAME,
    "AUTOSYNC_BROKER_URL": f"{REDIS_HOST}/{_BROKER_DB}",
    "AUTOSYNC_REDIS_URL": f"{REDIS_HOST}/{_LIMITS_DB}",
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
})

TABLES = ("temp_log", "sync_conflict", "event_outbox", "notification", "sync_skip", "sync_seen", "sync_page",
          "sync_run", "sync_request", "non_reg_user_share", "cal_event_share", "cal_event", "calendar",
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
    with start_worker(app, pool="threads", concurrency=4, perform_ping_check=False, loglevel="WARNING",
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
    """The Redis database for limits and locks, emptied."""
    client = redis.Redis.from_url(os.environ["AUTOSYNC_REDIS_URL"])
    client.flushdb()
    yield client
    client.close()


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

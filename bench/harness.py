"""The benchmark's real services: a throwaway PostgreSQL database, Redis databases 20-22, the
emulator as a subprocess, worker subprocesses, an RSS sampler and the worker counters.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg
import redis
import requests

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PG_ADMIN = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379")
BROKER_DB, LIMITS_DB, STATS_DB = 20, 21, 22
TABLES = ("temp_log", "sync_conflict", "event_outbox", "notification", "sync_skip", "sync_seen", "sync_page",
          "sync_run", "sync_request", "non_reg_user_share", "cal_event_share", "cal_event", "calendar",
          "user_main")


def free_port() -> int:
    """A free TCP port on localhost."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Services:
    """Names and URLs of everything one benchmark run uses."""

    db_name: str = field(default_factory=lambda: f"autosync_bench_{uuid.uuid4().hex[:8]}")
    emulator_port: int = field(default_factory=free_port)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="autosync-bench-")))
    redis: str = REDIS

    @property
    def db_url(self) -> str:
        """The benchmark database."""
        return PG_ADMIN.rsplit("/", 1)[0] + "/" + self.db_name

    @property
    def emulator_url(self) -> str:
        """Base URL of the emulator subprocess."""
        return f"http://127.0.0.1:{self.emulator_port}"

    def env(self) -> dict[str, str]:
        """autosync's environment for the bench process and the workers (limits off, quiet logs)."""
        emu = self.emulator_url
        return {
            "AUTOSYNC_DATABASE_URL": self.db_url,
            "AUTOSYNC_BROKER_URL": f"{self.redis}/{BROKER_DB}",
            "AUTOSYNC_REDIS_URL": f"{self.redis}/{LIMITS_DB}",
            "BENCH_STATS_URL": f"{self.redis}/{STATS_DB}",
            "MIPLANIT_GOOGLE_CLIENT_ID": "google-client-id",
            "MIPLANIT_GOOGLE_CLIENT_SECRET": "google-secret",
            "MIPLANIT_OUTLOOK_CLIENT_ID": "outlook-client-id",
            "MIPLANIT_OUTLOOK_CLIENT_SECRET": "outlook-secret",
            "AUTOSYNC_GOOGLE_TOKEN_URL": f"{emu}/google/token",
            "AUTOSYNC_GOOGLE_API_URL": f"{emu}/google/calendar/v3",
            "AUTOSYNC_OUTLOOK_TOKEN_URL": f"{emu}/microsoft/common/oauth2/v2.0/token",
            "AUTOSYNC_GRAPH_API_URL": f"{emu}/graph/v1.0",
            # Provider limits off: the benchmark measures the engine, not the throttle.
            "AUTOSYNC_GOOGLE_RATE": "0", "AUTOSYNC_GOOGLE_ACCOUNT_RATE": "0",
            "AUTOSYNC_OUTLOOK_RATE": "0", "AUTOSYNC_OUTLOOK_ACCOUNT_RATE": "0",
            "AUTOSYNC_OUTLOOK_MAILBOX_CONCURRENCY": "64",
            "AUTOSYNC_NOTIFICATION_SENDER": "log",
            "AUTOSYNC_LOG_LEVEL": "WARNING",
            "AUTOSYNC_MASS_DELETE_MIN": "1000000",
        }

    def apply(self) -> None:
        """Put the environment into this process (before anything reads autosync settings)."""
        os.environ.update(self.env())


def create_database(svc: Services) -> None:
    """Create the benchmark database and apply autosync's migrations."""
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{svc.db_name}"')
    from autosync.store.migrate import upgrade

    upgrade(svc.db_url, report=lambda _: None)


def drop_database(svc: Services) -> None:
    """Drop the benchmark database (closing this process's pool first)."""
    from autosync.store.db import close_pool

    close_pool()
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{svc.db_name}" WITH (FORCE)')


def reset_state(svc: Services) -> None:
    """Empty every table and the benchmark Redis databases."""
    with psycopg.connect(svc.db_url, autocommit=True) as conn:
        conn.execute("TRUNCATE " + ", ".join(TABLES) + " RESTART IDENTITY CASCADE")
    for db in (BROKER_DB, LIMITS_DB, STATS_DB):
        redis.Redis.from_url(f"{svc.redis}/{db}").flushdb()


@contextmanager
def redis_server(svc: Services) -> Iterator[str]:
    """The shared Redis when it has databases 20-22; otherwise a private redis-server for this run."""
    try:
        conf: dict[str, str] = redis.Redis.from_url(svc.redis, decode_responses=True).config_get(  # type: ignore[assignment]
            "databases")
        count = int(conf.get("databases", 16))
    except redis.RedisError:
        count = 0
    if count > STATS_DB:
        yield svc.redis
        return
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--databases", "32",
                             "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    svc.redis = f"redis://127.0.0.1:{port}"
    try:
        client = redis.Redis.from_url(svc.redis)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield svc.redis
    finally:
        _stop([proc])


@contextmanager
def emulator(svc: Services, seed: dict[str, Any] | None, latency: str | None = None) -> Iterator[str]:
    """`autosync emulator --port N --seed FILE [--latency MS:JITTER]` as a subprocess; yields the admin URL."""
    args = [str(BIN / "autosync"), "emulator", "--port", str(svc.emulator_port)]
    if latency:
        args += ["--latency", latency]
    if seed is not None:
        path = svc.workdir / "seed.json"
        path.write_text(json.dumps(seed))
        args += ["--seed", str(path)]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    admin = svc.emulator_url + "/_admin"
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"emulator exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            try:
                if requests.get(admin + "/faults", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("emulator did not start")
            time.sleep(0.2)
        yield admin
    finally:
        _stop([proc])


@contextmanager
def webhooks(svc: Services) -> Iterator[str]:
    """`autosync webhooks` as a subprocess on a free port; yields its base URL."""
    port = free_port()
    env = {**os.environ, **svc.env()}
    proc = subprocess.Popen([str(BIN / "autosync"), "webhooks", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(url + "/healthz", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("autosync webhooks did not start")
            time.sleep(0.1)
        yield url
    finally:
        _stop([proc])


@contextmanager
def workers(svc: Services, *, pool: str, concurrency: int, count: int = 1,
            extra_env: dict[str, str] | None = None) -> Iterator[list[subprocess.Popen]]:
    """`celery -A bench.worker_app worker` subprocesses on the benchmark broker."""
    # As `autosync worker` tells its processes (celeryconfig sizes the broker's producer pool by it).
    # autosync's settings accept threads or prefork only: a solo worker is sized like prefork (one
    # process, one step at a time), which is all the variable decides for it.
    sized = {"AUTOSYNC_WORKER_POOL": "prefork" if pool == "solo" else pool,
             "AUTOSYNC_WORKER_CONCURRENCY": str(concurrency)}
    env = {**os.environ, **svc.env(), **sized, **(extra_env or {})}
    procs = [subprocess.Popen([str(BIN / "celery"), "-A", "bench.worker_app", "worker", "-P", pool, "-c",
                               str(concurrency), "-n", f"bench{i}-{os.getpid()}@%h", "--loglevel", "WARNING",
                               "--without-gossip", "--without-mingle"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for i in range(count)]
    try:
        _wait_ready(count)
        yield procs
    finally:
        _stop(procs)


def _wait_ready(count: int, timeout: float = 60) -> None:
    from autosync.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(app.control.ping(timeout=0.5) or []) >= count:
            return
    raise RuntimeError("workers did not start")


def _stop(procs: list[subprocess.Popen], timeout: float = 30) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


class RssSampler:
    """Samples the RSS of worker processes and their children every ``interval`` seconds."""

    def __init__(self, pids: list[int], interval: float = 0.05) -> None:
        self.pids = pids
        self.interval = interval
        self.peak_process = 0
        self.peak_total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            total = 0
            for pid in self.pids:
                try:
                    parent = psutil.Process(pid)
                    for p in [parent, *parent.children(recursive=True)]:
                        rss = p.memory_info().rss
                        total += rss
                        self.peak_process = max(self.peak_process, rss)
                except psutil.Error:
                    continue
            self.peak_total = max(self.peak_total, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def worker_totals(settle: float = 0.35) -> dict[str, float]:
    """The summed worker counters, after letting every process flush once more."""
    from bench.instrument import read_totals

    time.sleep(settle)
    return read_totals(redis.Redis.from_url(os.environ["BENCH_STATS_URL"]))


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    """Counter differences (gauges taken from ``after``)."""
    return {k: v - before.get(k, 0.0) if not k.startswith(("msg.max", "last.", "flushed")) else v
            for k, v in after.items()}

"""The running system a fault campaign drives: embedded PostgreSQL and Valkey (real processes that
can be stopped and started), the provider emulator over HTTP, a prefork worker and beat as
subprocesses, and the demo's workload (both sides keep changing).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from autosync.embedded import Services, free_port
from autosync.workers import die_with_parent

ROOT = Path(__file__).resolve().parents[2]
STEP_OF = {"autosync.refresh_token": "token", "autosync.watch_calendar": "watch", "autosync.fetch_page": "fetch",
           "autosync.import_page": "import", "autosync.push_changes": "push"}


def say(line: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    print(f"[faults] {line}", file=sys.stderr, flush=True)


class System:
    """One campaign's services and processes; ``close()`` stops everything and removes the data."""

    def __init__(self, *, users: int, interval: int = 3, stale_after: int = 10, latency_ms: float = 40,
                 concurrency: int = 3, seed: int = 7) -> None:
        from autosync.demo import Demo
        from autosync.emulator.latency import Latency
        from autosync.emulator.server import Emulator

        self.dir = Path(tempfile.mkdtemp(prefix="autosync-faults-"))
        os.chmod(self.dir, 0o711)  # noqa: S103 - as root, PostgreSQL runs as nobody and must pass through it
        self.marks = self.dir / "marks"
        self.marks.mkdir()
        self.logs = self.dir / "logs"
        self.logs.mkdir()
        self.services = Services(self.dir / "autosync", durable=False)
        self.services.start(log=lambda _: None)
        self.emulator = Emulator(latency=Latency(latency_ms, latency_ms / 2) if latency_ms else None)
        self.emulator.start("127.0.0.1", free_port())
        self.demo = Demo(self.services.database_url, self.emulator, users=users, seed=seed)
        self.interval, self.concurrency = interval, concurrency
        self.rng = random.Random(seed)
        self.env = self._env(stale_after)
        os.environ.update(self.env)  # this process reads settings too (migrations, the checks)
        from autosync.store.migrate import upgrade

        upgrade(self.database_url, report=lambda _: None)
        self.setup = self.demo.setup()
        self.worker: subprocess.Popen[bytes] | None = None
        self.beat: subprocess.Popen[bytes] | None = None
        self.worker_starts = 0
        self.worker_deaths = 0  # exits the bench did not cause
        self.beat_restarts = 0
        self.expected_death = False
        self._supervise = threading.Event()
        self._lock = threading.RLock()
        self._watch: threading.Thread | None = None

    # --- configuration ---------------------------------------------------------------------------

    @property
    def database_url(self) -> str:
        """The embedded PostgreSQL's autosync database."""
        return self.services.database_url

    def _env(self, stale_after: int) -> dict[str, str]:
        env = {
            "AUTOSYNC_DATABASE_URL": self.services.database_url,
            "AUTOSYNC_BROKER_URL": self.services.broker_url,
            "AUTOSYNC_REDIS_URL": self.services.redis_url,
            **self.demo.provider_env(),
            "AUTOSYNC_SYNC_INTERVAL": str(self.interval),
            "AUTOSYNC_RUN_STALE_AFTER": str(stale_after),
            "AUTOSYNC_TASK_BACKOFF_CAP": "2",
            "AUTOSYNC_HTTP_BACKOFF_CAP": "1",
            "AUTOSYNC_HTTP_READ_TIMEOUT": "5",
            "AUTOSYNC_HTTP_CONNECT_TIMEOUT": "2",
            "AUTOSYNC_NOTIFICATION_SENDER": "log",
            "AUTOSYNC_LOG_LEVEL": "DEBUG",  # R7 searches every line autosync writes
            "AUTOSYNC_WORKER_POOL": "prefork",
            "AUTOSYNC_WORKER_CONCURRENCY": str(self.concurrency),
            "AUTOSYNC_WORKER_LIVENESS_FILE": str(self.dir / "worker.alive"),
            "BENCH_FAULT_MARKS": str(self.marks),
        }
        from autosync.store.sealed import Fernet

        env["AUTOSYNC_TOKEN_KEYS"] = Fernet.generate_key().decode()
        return env

    # --- processes ------------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        out = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
        proc = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **self.env}, stdout=out, stderr=out,
                                start_new_session=True, preexec_fn=die_with_parent)
        out.close()
        return proc

    def start_worker(self) -> None:
        """`celery worker -P prefork` on autosync's queues (its pool processes are what R1 kills)."""
        with self._lock:
            for mark in self.marks.iterdir():
                mark.unlink(missing_ok=True)
            self.worker = self._spawn("worker", [
                sys.executable, "-m", "celery", "-A", "bench.fault_worker", "worker", "-P", "prefork",
                "-c", str(self.concurrency), "-Q", "autosync,autosync.google,autosync.outlook",
                "-n", f"faults-{os.getpid()}-{self.worker_starts}@%h", "--loglevel", "INFO",
                "--without-gossip", "--without-mingle"])
            self.worker_starts += 1

    def start(self) -> None:
        """Worker and beat, and a supervisor thread that restarts a worker that died (as systemd would)."""
        self.start_worker()
        self.beat = self._spawn("beat", [sys.executable, "-m", "celery", "-A", "autosync", "beat", "--loglevel",
                                         "INFO", "-s", str(self.dir / "beat-schedule")])
        self._supervise.set()
        self._watch = threading.Thread(target=self._supervisor, daemon=True)
        self._watch.start()

    def _supervisor(self) -> None:
        while self._supervise.is_set():
            time.sleep(0.5)
            with self._lock:
                if self.worker is not None and self.worker.poll() is not None and self._supervise.is_set():
                    if not self.expected_death:
                        self.worker_deaths += 1
                        say(f"worker exited by itself with {self.worker.returncode}; restarting it")
                    self.expected_death = False
                    time.sleep(1.0)  # RestartSec
                    self.start_worker()
                if self.beat is not None and self.beat.poll() is not None and self._supervise.is_set():
                    say(f"beat exited with {self.beat.returncode}; restarting it")
                    self.beat_restarts += 1
                    self.beat = self._spawn("beat", [sys.executable, "-m", "celery", "-A", "autosync", "beat",
                                                     "--loglevel", "INFO", "-s", str(self.dir / "beat-schedule")])

    def kill_worker_main(self) -> None:
        """SIGKILL the worker's main process and, as a process manager does with the unit, its pool."""
        import psutil

        with self._lock:
            if self.worker is None or self.worker.poll() is not None:
                return
            with contextlib.suppress(psutil.Error):
                children = psutil.Process(self.worker.pid).children(recursive=True)
                self.expected_death = True
                self.worker.send_signal(signal.SIGKILL)
                self.worker.wait()
                for child in children:
                    with contextlib.suppress(psutil.Error):
                        child.kill()

    def busy(self) -> dict[int, str]:
        """Pool processes of the current worker inside a step: pid -> step kind (stale marks of killed
        processes are removed)."""
        import psutil

        with self._lock:
            try:
                pool = {p.pid for p in psutil.Process(self.worker.pid).children()} if self.worker else set()
            except psutil.Error:
                pool = set()
        out: dict[int, str] = {}
        for mark in self.marks.iterdir():
            with contextlib.suppress(OSError, ValueError):
                if int(mark.name) not in pool:
                    if not psutil.pid_exists(int(mark.name)):
                        mark.unlink(missing_ok=True)
                    continue
                kind = STEP_OF.get(mark.read_text())
                if kind:
                    out[int(mark.name)] = kind
        return out

    def stop(self) -> None:
        """Stop worker and beat (warm shutdown)."""
        self._supervise.clear()
        if self._watch is not None:
            self._watch.join()
        for proc in (self.worker, self.beat):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (self.worker, self.beat):
            if proc is None:
                continue
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def close(self) -> None:
        """Stop everything and remove the data directory."""
        with contextlib.suppress(Exception):
            self.stop()
        with contextlib.suppress(Exception):
            from autosync.store.db import close_pool

            close_pool()
        with contextlib.suppress(Exception):
            self.emulator.stop()
        with contextlib.suppress(Exception):
            self.services.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- workload -------------------------------------------------------------------------------

    def mutate(self, cycle: int) -> None:
        """One round of changes on both sides (the demo's edits, without its own faults)."""
        from autosync.demo.app_edits import AppEdits
        from autosync.demo.check import PROVIDER
        from autosync.demo.driver import _label
        from autosync.demo.provider_edits import ProviderEdits
        from autosync.demo.seed import linked_calendars

        rng = random.Random(f"{cycle}:{self.rng.random()}")
        touched: set[str] = set()
        with self.connect() as conn:
            calendars = [c for c in linked_calendars(conn) if not c["needsReauth"]]
            if not calendars:
                return
            provider = ProviderEdits(self.demo.client, rng, cycle, touched)
            app = AppEdits(conn, rng, cycle, touched)
            for _ in range(rng.randint(2, 3)):
                cal = rng.choice(calendars)
                with contextlib.suppress(Exception):  # an edit racing the sync may find its event gone
                    provider.run(PROVIDER[cal["calendarType"]], cal["extCalendarId"], _label(cal))
            for _ in range(rng.randint(2, 3)):
                with contextlib.suppress(psycopg.Error):
                    app.run(rng.choice(calendars), "")

    def connect(self) -> psycopg.Connection[dict[str, Any]]:
        """An autocommit connection to the autosync database."""
        return psycopg.connect(self.database_url, autocommit=True, row_factory=dict_row, connect_timeout=3)

    def expire_tokens(self, share: float = 0.3) -> None:
        """Mark some stored access tokens as about to expire, so runs start with a token step."""
        with self.connect() as conn:
            conn.execute('UPDATE calendar SET "accessTokenExpirationDate" = now() - interval \'1 minute\' '
                         'WHERE random() < %s', (share,))

    def settle(self, timeout: float = 180) -> bool:
        """Wait until every linked calendar finished two runs started from now and nothing waits to be
        pushed; True when that happened within ``timeout``."""
        deadline = time.monotonic() + timeout
        since = None
        while time.monotonic() < deadline:
            try:
                with self.connect() as conn:
                    if since is None:
                        since = conn.execute("SELECT now() AS t").fetchone()["t"]  # type: ignore[index]
                    row = conn.execute(SETTLED, {"since": since}).fetchone()
            except psycopg.Error:
                time.sleep(1)
                continue
            assert row is not None
            if not row["lagging"] and not row["pending"]:
                return True
            time.sleep(0.5)
        return False


SETTLED = """
SELECT (SELECT count(*) FROM calendar c WHERE c.status AND c."calendarType" IN (1, 2) AND NOT c."needsReauth"
          AND (SELECT count(*) FROM sync_run r WHERE r."calendarId" = c."calendarId" AND r."startedAt" > %(since)s
               AND r."finishedAt" IS NOT NULL) < 2) AS lagging,
       (SELECT count(*) FROM event_outbox WHERE "doneAt" IS NULL) AS pending
"""

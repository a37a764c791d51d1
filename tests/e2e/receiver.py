"""The real `autosync webhooks` process for receiver tests and the receiver bench, and what they need around it.

- `Relay`: a TCP relay in front of PostgreSQL that counts the bytes the receiver sends it, so a test
  can tell whether a request cost a database round trip.
- `seed_channels`: a user, a Google calendar and a Graph mailbox with one live channel each, as a
  worker would have stored them (secrets only as hashes).
- `start`: the receiver as a subprocess, waiting until it is ready.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Relay:
    """Forwards 127.0.0.1:<port> to PostgreSQL and counts client-to-server bytes."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sent = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def url_for(self, database_url: str) -> str:
        """The database URL, pointed at this relay."""
        parts = urlsplit(database_url)
        netloc = parts.netloc.rsplit("@", 1)
        host = f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, count: bool) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if count:
                    with self._lock:
                        self.sent += len(data)
                dst.sendall(data)
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


@dataclass
class Seeded:
    """The channels a receiver test notifies: a Google channel and a Graph subscription."""

    google_id: str
    google_secret: str
    graph_id: str
    graph_secret: str


def seed_channels(database_url: str) -> Seeded:
    """An emptied database with one user, a Google calendar and an Outlook mailbox, each watched."""
    seeded = Seeded(str(uuid.uuid4()), uuid.uuid4().hex, str(uuid.uuid4()), uuid.uuid4().hex)
    with psycopg.connect(database_url, autocommit=True) as db:
        db.execute("TRUNCATE push_channel, sync_run, sync_request, calendar, user_main RESTART IDENTITY CASCADE")
        user = db.execute("INSERT INTO user_main (email) VALUES ('hooks@example.com') RETURNING \"userId\"").fetchone()
        assert user is not None
        for kind, channel_id, secret in ((1, seeded.google_id, seeded.google_secret),
                                         (2, seeded.graph_id, seeded.graph_secret)):
            cal = db.execute('INSERT INTO calendar ("userId", "calendarType", "extCalendarId", "socialAccountId", '
                             '"refreshToken", status) VALUES (%s, %s, %s, %s, %s, true) RETURNING "calendarId"',
                             (user[0], kind, f"cal-{kind}", f"acct-{kind}", "refresh")).fetchone()
            assert cal is not None
            db.execute('INSERT INTO push_channel ("channelId", "calendarType", "userId", "socialAccountId", '
                       '"calendarId", "resourceId", "secretHash", "expiresAt") '
                       "VALUES (%s, %s, %s, %s, %s, 'res', %s, now() + interval '1 day')",
                       (channel_id, kind, user[0], f"acct-{kind}", cal[0] if kind == 1 else None,
                        hashlib.sha256(secret.encode()).digest()))
    return seeded


def messages(database_url: str, channel_id: str) -> int:
    """How many notifications the receiver took on a channel."""
    with psycopg.connect(database_url) as db:
        row = db.execute('SELECT messages FROM push_channel WHERE "channelId" = %s', (channel_id,)).fetchone()
    return int(row[0]) if row else 0


@contextlib.contextmanager
def start(env: dict[str, str], *, ready: bool = True) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`autosync webhooks` on a free port with this environment: (process, base URL)."""
    port = free_port()
    log = open(f"/tmp/autosync-webhooks-test-{port}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "autosync.cli", "webhooks", "--port", str(port)], cwd=ROOT,
                            env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        path = "/readyz" if ready else "/healthz"
        while True:
            assert proc.poll() is None, Path(log.name).read_text()
            with contextlib.suppress(requests.RequestException):
                if requests.get(url + path, timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"the receiver was not {path[1:]}: {Path(log.name).read_text()}"
            time.sleep(0.05)
        yield proc, url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def log_of(url: str) -> str:
    """What the receiver started by `start` at ``url`` has logged so far."""
    return Path(f"/tmp/autosync-webhooks-test-{url.rsplit(':', 1)[1]}.log").read_text()


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def receiver_env(database_url: str, broker_url: str, **overrides: str) -> dict[str, str]:
    """The test environment for a receiver process."""
    env = dict(os.environ)
    env.update({"AUTOSYNC_DATABASE_URL": database_url, "AUTOSYNC_BROKER_URL": broker_url,
                "AUTOSYNC_REDIS_URL": broker_url, "AUTOSYNC_LOG_LEVEL": "INFO"})
    env.update(overrides)
    return env

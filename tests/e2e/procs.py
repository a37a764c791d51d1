"""Real worker and Flower processes for operations tests, on a broker database of their own."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
import requests

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_flower(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """Flower for the autosync app on a free loopback port, answering and subscribed; (process, base URL)."""
    port = free_port()
    proc = subprocess.Popen([str(BIN / "celery"), "-A", "autosync", "flower", f"--port={port}", "--address=127.0.0.1"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            if requests.get(f"{base}/healthcheck", timeout=1).ok:
                break
        except requests.ConnectionError:
            time.sleep(0.2)
    time.sleep(1.5)  # Flower subscribes to the event stream
    return proc, base


def ops_env(**overrides: str) -> dict[str, str]:
    """The test environment with a separate broker DB, so the in-process test worker stays out of it."""
    env = dict(os.environ)
    env["AUTOSYNC_BROKER_URL"] = os.environ["AUTOSYNC_TEST_OPS_BROKER"]
    env.update(overrides)
    return env


@contextmanager
def workers(count: int, env: dict[str, str], *, concurrency: int | None = 2, fresh: bool = True,
            pool: str = "threads", supervised: bool = False) -> Iterator[list[subprocess.Popen]]:
    """``count`` separate `celery -A autosync worker` processes; stopped (TERM, then KILL) on exit.

    ``supervised`` starts them as production does, through one `autosync worker --processes count`
    (``concurrency`` None: the production default per process). ``fresh`` empties the broker first;
    pass False to take over messages earlier workers left.
    """
    if fresh:
        _empty(env["AUTOSYNC_BROKER_URL"])
    quiet = ["--without-gossip", "--without-mingle"]
    if supervised:
        sized = ["--concurrency", str(concurrency)] if concurrency else []
        procs = [subprocess.Popen([str(BIN / "autosync"), "worker", "--processes", str(count), "--pool", pool,
                                   *sized, "--loglevel", "WARNING", "--", *quiet],
                                  cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                  stderr=open("/tmp/ops-worker-supervised.log", "ab"))]  # noqa: SIM115
    else:
        procs = [subprocess.Popen([str(BIN / "celery"), "-A", "autosync", "worker", "-P", pool, "-c",
                                   str(concurrency or 2), "-n", f"ops{i}-{os.getpid()}@%h", "--loglevel", "WARNING",
                                   *quiet],
                                  cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                  stderr=open(f"/tmp/ops-worker-{i}.log", "ab"))  # noqa: SIM115
                 for i in range(count)]
    try:
        _wait_ready(env, count)
        yield procs
    finally:
        stop(procs)


def _empty(url: str) -> None:
    """Empty the ops broker database but keep its owner mark."""
    client = redis.Redis.from_url(url)
    owner = client.get("autosync-test:owner")
    client.flushdb()
    if owner is not None:
        client.set("autosync-test:owner", owner, ex=6 * 3600)


def _wait_ready(env: dict[str, str], count: int, timeout: float = 30) -> None:
    from celery import Celery

    probe = Celery(broker=env["AUTOSYNC_BROKER_URL"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = probe.control.ping(timeout=0.5) or []
        if len(replies) >= count:
            return
    raise RuntimeError("workers did not start")


def stop(procs: list[subprocess.Popen], timeout: float = 20) -> None:
    """TERM (warm shutdown), then KILL what is left."""
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


def cli(*args: str, env: dict[str, str], timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """Run the autosync CLI in a subprocess with this environment."""
    return subprocess.run([str(BIN / "autosync"), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


@contextmanager
def beats(count: int, env: dict[str, str], *, stagger: float = 0.0) -> Iterator[list[subprocess.Popen]]:
    """``count`` separate `celery -A autosync beat` processes, ``stagger`` seconds apart, each with a schedule
    file of its own (as two hosts would have); stopped on exit."""
    folder = Path(tempfile.mkdtemp(prefix="autosync-beats-"))
    procs = []
    try:
        for i in range(count):
            if i:
                time.sleep(stagger)
            procs.append(subprocess.Popen([str(BIN / "celery"), "-A", "autosync", "beat", "--loglevel", "WARNING",
                                           "--schedule", str(folder / f"beat-{i}")], cwd=ROOT, env=env,
                                          stdout=subprocess.DEVNULL, stderr=open(folder / f"beat-{i}.log", "ab")))  # noqa: SIM115
        yield procs
    finally:
        stop(procs)
        shutil.rmtree(folder, ignore_errors=True)

"""`autosync worker`: one I/O-pool Celery process per core under one supervisor that stops as a unit."""

from __future__ import annotations

import signal
import subprocess
import time

import psutil

from tests.e2e.procs import BIN, ROOT, _empty, _wait_ready, ops_env


def _start(env: dict[str, str]) -> subprocess.Popen:
    _empty(env["AUTOSYNC_BROKER_URL"])
    proc = subprocess.Popen([str(BIN / "autosync"), "worker", "--processes", "2", "--concurrency", "4",
                             "--loglevel", "WARNING", "--", "--without-gossip", "--without-mingle"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_ready(env, 2)
    return proc


def _workers_of(proc: subprocess.Popen) -> list[psutil.Process]:
    return [p for p in psutil.Process(proc.pid).children() if "celery" in " ".join(p.cmdline())]


def test_a_term_stops_every_worker_process_warmly(limits_redis) -> None:
    env = ops_env()
    proc = _start(env)
    children = _workers_of(proc)
    assert len(children) == 2
    assert all({"-P", "threads", "-c", "4"} <= set(c.cmdline()) for c in children)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "2 x celery worker -P threads -c 4" in out
    assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children)


def test_when_one_worker_process_dies_the_supervisor_stops_the_others_and_fails(limits_redis) -> None:
    env = ops_env()
    proc = _start(env)
    first, second = _workers_of(proc)
    first.kill()
    proc.communicate(timeout=60)
    assert proc.returncode != 0  # the process manager (compose, systemd, honcho) sees the unit fail
    time.sleep(0.2)
    assert not second.is_running() or second.status() == psutil.STATUS_ZOMBIE

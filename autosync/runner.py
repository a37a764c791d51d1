"""`autosync run`: the whole system as one supervised process group (worker, beat, optional Flower).

Uses AUTOSYNC_DATABASE_URL / AUTOSYNC_BROKER_URL when set, otherwise embedded PostgreSQL and Valkey.
With --demo it also serves the provider emulator, links seeded users, keeps changing both sides
and injecting faults between beat cycles, and ends with a convergence check.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import requests

from autosync.embedded import EmbeddedError, Services, data_dir, free_port, open_private, prepare, write_private
from autosync.settings import get_settings, is_set, process_environment
from autosync.workers import argv as worker_argv
from autosync.workers import child_environment, die_with_parent, plan

RESTARTS = 5
RESTART_WINDOW = 600


class Runner:
    """Starts, watches and stops the processes of one `autosync run`."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.root = data_dir(get_settings().data_dir)
        self.services: Services | None = None
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.specs: dict[str, tuple[list[str], dict[str, str] | None]] = {}
        self.restarts: dict[str, list[float]] = {}
        self.stopping = False
        self.interrupts = 0
        self.env = process_environment()

    def say(self, line: str) -> None:
        print(line, flush=True)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.interrupts += 1
        if self.interrupts == 1:
            self.say(f"received {signal.Signals(signum).name}: stopping ...")
        self.stopping = True

    def start_services(self) -> None:
        prepare(self.root)
        need_pg, need_broker = not is_set("AUTOSYNC_DATABASE_URL"), not is_set("AUTOSYNC_BROKER_URL")
        if not need_pg and not need_broker:
            self.say("using AUTOSYNC_DATABASE_URL and AUTOSYNC_BROKER_URL")
            return
        # The demo's data is throwaway, so it may skip fsync; anything else keeps it.
        self.services = Services(self.root, durable=not self.args.demo).start(self.say, postgres=need_pg,
                                                                                broker=need_broker)
        if need_pg:
            self.env["AUTOSYNC_DATABASE_URL"] = self.services.database_url
        if need_broker:
            self.env["AUTOSYNC_BROKER_URL"] = self.services.broker_url
            if not is_set("AUTOSYNC_REDIS_URL"):
                self.env["AUTOSYNC_REDIS_URL"] = self.services.redis_url

    def spawn(self, name: str, argv: list[str], extra_env: dict[str, str] | None = None) -> None:
        logs = self.root / "logs"
        logs.mkdir(mode=0o700, exist_ok=True)
        os.chmod(logs, 0o700)
        out = open_private(logs / f"{name}.log")
        proc = subprocess.Popen(argv, env={**self.env, **(extra_env or {})}, stdout=out, stderr=out,
                                start_new_session=True, preexec_fn=_private_child)
        out.close()
        self.procs[name] = proc
        self.specs[name] = (argv, extra_env)
        if self.services:
            self.services.register(name, proc)

    def start_app(self, interval: float) -> None:
        celery = [sys.executable, "-m", "celery", "-A", "autosync"]
        self.env["AUTOSYNC_SYNC_INTERVAL"] = str(max(1, int(interval)))
        workers = plan(get_settings(), processes=self.args.workers)
        self.env.update(child_environment(workers))
        for i in range(1, workers.processes + 1):
            # worker, worker2, ...: logs/worker.log stays the first process's log
            self.spawn("worker" if i == 1 else f"worker{i}",
                       worker_argv(workers, i, name=f"autosync-run-{os.getpid()}-"))
        self.spawn("beat", [*celery, "beat", "--loglevel", "INFO", "-s", str(self.root / "beat-schedule")])
        if self.args.flower:
            self.start_flower()
        self.say(f"worker ({workers.processes} processes, {workers.pool} pool x {workers.concurrency}) and beat "
                 f"running; a cycle every {interval:g}s; "
                 f"logs in {self.root / 'logs'}")
        self.start_metrics()

    def start_metrics(self) -> None:
        """`autosync metrics`, the Prometheus endpoint (AUTOSYNC_METRICS_PORT, or a free port if taken)."""
        from autosync.metrics_server import announce, usable_port

        settings = get_settings()
        port = usable_port(settings.metrics_host, settings.metrics_port)
        self.spawn("metrics", [sys.executable, "-m", "autosync.cli", "metrics", "--port", str(port)])
        self.say(announce(settings.metrics_host, port))

    def start_flower(self) -> None:
        """`autosync flower` with the configured login, or a generated one kept 0600 in the data directory.

        The generated password is printed as a path, never as text: stdout may end up in a log.
        """
        settings = get_settings()
        port = self.args.flower_port or settings.flower_port
        extra: dict[str, str] = {}
        login = "FLOWER_BASIC_AUTH / FLOWER_AUTH as configured"
        if not (settings.flower_basic_auth or settings.flower_oauth):
            path = self.root / "flower-password"
            extra["FLOWER_BASIC_AUTH"] = _flower_login(path)
            login = f"user admin, password in {path}"
        self.spawn("flower", [sys.executable, "-m", "autosync.cli", "flower", "--port", str(port)], extra)
        self.say(f"Flower on http://{settings.flower_address}:{port} ({login})")

    def start_webhooks(self) -> None:
        """`autosync webhooks`; workers then watch calendars through it.

        With AUTOSYNC_WEBHOOK_URL set (the public address, e.g. a proxy or tunnel) it listens on
        AUTOSYNC_WEBHOOK_HOST/PORT; otherwise on a free loopback port, which only the emulator reaches.
        """
        settings = get_settings()
        if is_set("AUTOSYNC_WEBHOOK_URL"):
            host, port = settings.webhook_host, settings.webhook_port
        else:
            host, port = "127.0.0.1", free_port()
            self.env["AUTOSYNC_WEBHOOK_URL"] = f"http://127.0.0.1:{port}/hooks"
        url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"
        self.spawn("webhooks", [sys.executable, "-m", "autosync.cli", "webhooks", "--host", host, "--port", str(port)])
        deadline = time.monotonic() + 20
        while True:
            self.check_children()
            try:
                if requests.get(url + "/healthz", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("autosync webhooks did not start")
            time.sleep(0.1)
        self.say(f"change notifications on: receiver on {url}, notified at {self.env['AUTOSYNC_WEBHOOK_URL']}; "
                 "watched calendars sync when their provider notifies, the beat polls only what needs it")

    def check_children(self) -> None:
        """Restart a worker or beat that died, as a supervisor would; give up on one that keeps dying.

        A worker can exit on its own when the broker restarts under it (kombu failing to restore its
        unacknowledged messages, seen by the fault campaigns, RELIABILITY.md): nothing is lost, as its
        messages are acknowledged late and the stale-run sweep resumes its runs, so it is started again.
        More than RESTARTS exits of one process within RESTART_WINDOW seconds stop the run instead.
        """
        for name, proc in list(self.procs.items()):
            if proc.poll() is None or self.interrupts or self.stopping:
                continue
            recent = [t for t in self.restarts.get(name, []) if time.monotonic() - t < RESTART_WINDOW]
            if not name.startswith(("worker", "beat")) or len(recent) >= RESTARTS:
                raise RuntimeError(f"{name} exited with code {proc.returncode}; see {self.root / 'logs'}")
            self.restarts[name] = [*recent, time.monotonic()]
            self.say(f"{name} exited with code {proc.returncode}; restarting it "
                     f"({len(recent) + 1} of {RESTARTS} within {RESTART_WINDOW // 60} minutes)")
            argv, extra_env = self.specs[name]
            self.spawn(name, argv, extra_env)

    def stop(self) -> None:
        self.stopping = True
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # Celery's warm shutdown: running tasks finish
        deadline = time.monotonic() + 60
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.services:
            self.services.stop()


def _flower_login(path: Path) -> str:
    """admin:<password> from the file, or a new random one saved there (0600) for later runs."""
    try:
        os.chmod(path, 0o600)
        login = path.read_text().strip()
    except FileNotFoundError:
        login = ""
    if not login.startswith("admin:") or len(login) < len("admin:") + 16:
        login = "admin:" + secrets.token_urlsafe(18)
        write_private(path, login + "\n")
    return login


def _private_child() -> None:
    """In a child before exec: what it writes (logs, beat's schedule) is this user's alone, and it
    gets SIGTERM when the runner dies."""
    os.umask(0o077)
    die_with_parent()


class CycleWatch:
    """Counts beat cycles from sync_run: a cycle is complete when new runs exist and none is open.

    With change notifications on, the beat leaves watched calendars alone, so a cycle may start no
    run at all: then a cycle is a beat interval after which no run is open, no app change waits to be
    pushed and ``idle()`` (the demo's emulator has no notification left to deliver) holds.
    """

    STATE = ('SELECT coalesce(max("runId"), 0), count(*) FILTER (WHERE "finishedAt" IS NULL), '
             '(SELECT count(*) FROM event_outbox WHERE "doneAt" IS NULL) FROM sync_run')

    def __init__(self, database_url: str, *, period: float | None = None,
                 idle: Callable[[], bool] | None = None) -> None:
        self.url = database_url
        self.period = period
        self.idle = idle or (lambda: True)
        self.seen = self._state()[0]
        self.last = time.monotonic()

    def _state(self) -> tuple[int, int, int]:
        with psycopg.connect(self.url) as conn:
            row = conn.execute(self.STATE).fetchone()
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])

    def completed(self) -> bool:
        latest, open_runs, waiting = self._state()
        if self.period is None:
            if latest > self.seen and open_runs == 0:
                self.seen = latest
                return True
            return False
        if latest == 0 or time.monotonic() - self.last < self.period or open_runs or waiting or not self.idle():
            return False
        self.seen, self.last = latest, time.monotonic()
        return True


def run(args: argparse.Namespace) -> int:
    """Entry point of `autosync run`."""
    if getattr(args, "latency", None) is not None and not args.demo:
        print("autosync run: --latency applies to the demo's emulator: add --demo", file=sys.stderr)
        return 2
    runner = Runner(args)
    signal.signal(signal.SIGINT, runner._on_signal)
    signal.signal(signal.SIGTERM, runner._on_signal)
    emulator = None
    try:
        runner.start_services()
        from autosync.store.migrate import upgrade

        upgrade(runner.env["AUTOSYNC_DATABASE_URL"], report=lambda line: None)
        demo = None
        if args.demo:
            emulator, demo = _start_demo(runner)
        interval = args.interval or (5.0 if args.demo else float(get_settings().sync_interval))
        if args.webhooks:
            runner.start_webhooks()
        runner.start_app(interval)
        watch = CycleWatch(runner.env["AUTOSYNC_DATABASE_URL"], period=interval if args.webhooks else None,
                           idle=(lambda: demo.client.push_pending() == 0) if demo is not None else None)
        return _loop(runner, demo, args.cycles, watch)
    except EmbeddedError as exc:
        print(f"autosync run: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # a supervised process died
        print(f"autosync run: {exc}", file=sys.stderr)
        return 1
    finally:
        runner.stop()
        if emulator is not None:
            emulator.stop()


def _start_demo(runner: Runner) -> tuple[Any, Any]:
    from autosync.demo import Demo
    from autosync.emulator.server import Emulator

    latency = getattr(runner.args, "latency", None)
    emulator = Emulator(latency=latency).start("127.0.0.1", free_port())
    demo = Demo(runner.env["AUTOSYNC_DATABASE_URL"], emulator)
    runner.env.update(demo.provider_env())
    # A demo should show recovery within a few cycles, not after production back-offs.
    runner.env.setdefault("AUTOSYNC_TASK_BACKOFF_CAP", "4")
    runner.env.setdefault("AUTOSYNC_HTTP_BACKOFF_CAP", "1")
    counts = demo.setup()
    runner.say("demo: emulator on " + emulator.base_url + "; " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    if latency is not None and latency.ms:
        runner.say(f"demo: every provider answer takes {latency.ms:g} ± {latency.jitter_ms:g} ms, "
                   "as on the real services")
    return emulator, demo


def _loop(runner: Runner, demo: Any, cycles: int | None, watch: CycleWatch) -> int:
    cycle = 0
    while not runner.stopping:
        runner.check_children()
        time.sleep(0.5)
        if not watch.completed():
            continue
        cycle += 1
        if demo is None:
            runner.say(f"cycle {cycle} done")
        else:
            _progress(runner, demo, cycle)
            if cycles is None or cycle < cycles:
                for line in demo.step(cycle):
                    runner.say("    " + line)
        if cycles is not None and cycle >= cycles:
            break
    if demo is None:
        return 0
    return _finish_demo(runner, demo, watch)


def _progress(runner: Runner, demo: Any, cycle: int) -> None:
    runner.say(f"cycle {cycle:>3} | " + _compact(demo.progress()))


def _compact(p: dict[str, int]) -> str:
    """One readable progress line from the demo's counters."""
    g = p.get
    reauth = f" ({g('calendars_needing_reauth')} need re-auth)" if g("calendars_needing_reauth") else ""
    return (f"{g('calendars', 0)} calendars{reauth} | runs ok {g('runs_ok', 0)}, failed {g('runs_failed', 0)}, "
            f"re-auth {g('runs_needs_reauth', 0)}, blocked {g('runs_blocked', 0)} | full syncs {g('full_syncs', 0)} | "
            f"imported {g('events_imported', 0)} | pushed {g('pushes_done', 0)} | conflicts {g('conflicts', 0)} | "
            f"errors {g('errors', 0)} | requests {g('provider_requests', 0)}")


def _finish_demo(runner: Runner, demo: Any, watch: CycleWatch) -> int:
    demo.quiesce()
    interrupted = runner.stopping
    runner.say("settling: no more changes; waiting for two quiet cycles"
               + (" (signal again to skip) ..." if interrupted else " ..."))
    quiet = 0
    deadline = time.monotonic() + (60 if interrupted else 120)
    while quiet < 2 and runner.interrupts < 2 and time.monotonic() < deadline:
        runner.check_children()
        time.sleep(0.5)
        if watch.completed():
            quiet += 1
    p = demo.progress()
    runner.say("")
    runner.say("summary: " + _compact(p))
    if quiet < 2:
        runner.say("convergence: not checked — stopped before the last changes could settle")
        return 0 if interrupted else 1
    converged, lines = demo.convergence()
    if converged:
        runner.say("convergence: OK — every live provider event matches its database row, and vice versa")
        return 0
    runner.say(f"convergence: FAILED — {len(lines)} mismatches")
    for line in lines[:50]:
        runner.say("  " + line)
    return 1

"""Procfile, docker-compose.yml, Dockerfile and the Celery app agree; task names are a stable wire contract."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import time
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import requests
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {name: cmd.strip() for name, _, cmd in (line.partition(":") for line in lines if line.strip())}


def test_honcho_check_passes() -> None:
    out = subprocess.run([str(Path(sys.executable).parent / "honcho"), "check"], cwd=ROOT, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr


def test_procfile_has_worker_beat_and_flower_on_the_app() -> None:
    procs = _procfile()
    assert set(procs) == {"worker", "beat", "flower", "webhooks", "metrics"}
    for name in ("beat",):
        assert shlex.split(procs[name])[:4] == ["celery", "-A", "autosync", name]
    # Flower only through `autosync flower`, which refuses to start without a login.
    assert shlex.split(procs["flower"]) == ["autosync", "flower"]
    assert shlex.split(procs["webhooks"]) == ["autosync", "webhooks"]
    assert shlex.split(procs["worker"])[:2] == ["autosync", "worker"]  # one I/O-pool process per core
    assert shlex.split(procs["metrics"]) == ["autosync", "metrics"]  # loopback unless told otherwise


def test_compose_services_match_the_procfile_and_wait_for_healthy_services() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "worker", "beat", "flower", "webhooks", "metrics"} <= set(services)
    assert "healthcheck" in services["postgres"] and "healthcheck" in services["redis"]
    procs = _procfile()
    for name in ("worker", "beat", "flower", "webhooks", "metrics"):
        command = services[name]["command"]
        wanted = shlex.split(procs[name])[:4]
        assert shlex.split(command)[:len(wanted)] == wanted
        deps = services[name]["depends_on"]
        assert deps["postgres"]["condition"] == "service_healthy"
        assert deps["redis"]["condition"] == "service_healthy"
    flower = services["flower"]
    assert "basic-auth" not in flower["command"]  # a password on a command line is readable by every local user
    assert flower["environment"]["FLOWER_BASIC_AUTH"].endswith("${FLOWER_PASSWORD:?set FLOWER_PASSWORD}")
    assert flower["ports"] == ["127.0.0.1:5555:5555"]  # loopback on the host; TLS proxy in front (README)
    assert services["metrics"]["ports"] == ["127.0.0.1:8471:8471"]  # published on the host's loopback only
    assert services["worker"]["healthcheck"]["test"][1:4] == ["autosync", "health", "worker"]  # a stat, no broker ping


def test_autosync_worker_runs_two_io_pool_processes_per_core_on_every_queue() -> None:
    from autosync.settings import Settings
    from autosync.workers import argv, cores, plan

    settings = Settings.from_env({})
    p = plan(settings)
    assert (p.processes, p.pool, p.concurrency) == (2 * cores(), "threads", 16)
    line = argv(p, 1)
    assert line[line.index("-Q") + 1] == "autosync,autosync.google,autosync.outlook"
    assert line[line.index("-P") + 1] == "threads" and line[line.index("-n") + 1] == "autosync1@%h"
    prefork = plan(Settings.from_env({"AUTOSYNC_WORKER_POOL": "prefork"}))
    assert (prefork.processes, prefork.concurrency) == (1, cores())  # prefork forks its own children
    sized = plan(Settings.from_env({"AUTOSYNC_WORKER_PROCESSES": "3", "AUTOSYNC_WORKER_CONCURRENCY": "48"}))
    assert (sized.processes, sized.concurrency) == (3, 48)


def _seconds(value: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    return float(value[:-1]) * units[value[-1]] if value[-1] in units else float(value)


def test_compose_checks_worker_and_beat_health_and_lets_running_steps_finish_on_stop() -> None:
    from autosync.settings import Settings

    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert services["worker"]["healthcheck"]["test"][1:4] == ["autosync", "health", "worker"]
    assert services["beat"]["healthcheck"]["test"][1:4] == ["autosync", "health", "beat"]
    defaults = Settings.from_env({})
    assert _seconds(services["worker"]["stop_grace_period"]) > defaults.task_time_limit
    assert _seconds(services["beat"]["healthcheck"]["start_period"]) > defaults.sync_interval
    checks = [part for svc in services.values() for part in svc.get("healthcheck", {}).get("test", [])]
    assert not any("inspect" in part for part in checks)  # no broadcast through the broker


def test_a_worker_without_q_consumes_every_autosync_queue() -> None:
    from autosync.celery import app

    names = {q.name for q in app.conf.task_queues}
    assert names == {"autosync", "autosync.google", "autosync.outlook"}
    assert app.conf.task_acks_late and app.conf.worker_prefetch_multiplier == 1
    assert app.conf.task_soft_time_limit < app.conf.task_time_limit
    assert app.conf.worker_send_task_events and app.conf.task_serializer == "json"


def test_task_names_are_a_stable_snapshot() -> None:
    from autosync.celery import app

    ours = sorted(n for n in app.tasks if n.startswith("autosync."))
    assert ours == [
        "autosync.changed", "autosync.deliver_notifications", "autosync.fan_out", "autosync.fetch_page",
        "autosync.import_page", "autosync.push_changes", "autosync.refresh_token", "autosync.resume_stale",
        "autosync.sync_user", "autosync.unwatch_channel", "autosync.watch_calendar",
    ]


def test_cli_help_lists_the_commands() -> None:
    out = subprocess.run([sys.executable, "-m", "autosync.cli", "--help"], capture_output=True, text=True,
                         check=True)
    for command in ("db", "sync", "handle", "emulator", "status", "worker", "run", "webhooks", "metrics"):
        assert command in out.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _flower_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWER_")}
    env.update(extra)
    return env


@pytest.mark.parametrize("auth", [None, "admin", "admin:", ":secret", "admin:pw,guest"])
def test_flower_refuses_to_start_without_a_login(auth: str | None) -> None:
    env = _flower_env(**({"FLOWER_BASIC_AUTH": auth} if auth is not None else {}))
    out = subprocess.run([str(Path(sys.executable).parent / "autosync"), "flower", "--port", str(_free_port())],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "FLOWER_BASIC_AUTH" in out.stderr


def _listen_addresses(port: int) -> set[str]:
    """Local addresses listening on a TCP port, from /proc/net/tcp (hex, little-endian IPv4)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, _, hex_port = local.partition(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0)))
    for line in Path("/proc/net/tcp6").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
            found.add("ipv6:" + local.rsplit(":", 1)[0])
    return found


def test_flower_serves_on_loopback_behind_its_login() -> None:
    port = _free_port()
    env = _flower_env(FLOWER_BASIC_AUTH="admin:correct-horse-battery")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "autosync"), "flower", "--port", str(port)], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{base}/healthcheck", timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        assert _listen_addresses(port) == {"127.0.0.1"}
        assert requests.get(base + "/", timeout=5).status_code == 401
        assert requests.get(base + "/api/tasks", timeout=5).status_code == 401
        assert requests.get(base + "/api/tasks", auth=("admin", "correct-horse-battery"), timeout=5).ok
        assert "correct-horse-battery" not in Path(f"/proc/{proc.pid}/cmdline").read_text()
    finally:
        proc.terminate()
        proc.wait(20)


# What the Docker image installs besides the runtime dependencies: Flower.
IMAGE_EXTRAS = ("monitor",)


def _lock() -> dict[str, tuple[str, int]]:
    """requirements.lock as {name: (version, number of hashes)}."""
    entries: dict[str, tuple[str, int]] = {}
    name = ""
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        pinned = re.match(r"^([A-Za-z0-9_.\-]+)==([^ ;\\]+)", line)
        if pinned:
            name = canonicalize_name(pinned.group(1))
            entries[name] = (pinned.group(2), 0)
        elif line.strip().startswith("--hash=sha256:") and name:
            version, hashes = entries[name]
            entries[name] = (version, hashes + 1)
    return entries


def test_the_lock_pins_every_dependency_the_image_installs_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["dependencies"]]
    wanted += [Requirement(r) for extra in IMAGE_EXTRAS for r in project["optional-dependencies"][extra]]
    lock = _lock()
    assert lock and all(hashes > 0 for _, hashes in lock.values()), lock
    for req in wanted:
        name = canonicalize_name(req.name)
        assert name in lock, f"{req} is not in requirements.lock: run scripts/lock.sh"
        assert req.specifier.contains(lock[name][0], prereleases=True), f"{req}: the lock has {lock[name][0]}"
        # The extras asked for (celery[redis], psycopg[binary,pool]) bring their own packages.
        for extra in req.extras:
            for dep in metadata.requires(req.name) or []:
                sub = Requirement(dep)
                if sub.marker and sub.marker.evaluate({"extra": extra}) and not sub.marker.evaluate({"extra": ""}):
                    assert canonicalize_name(sub.name) in lock, f"{req.name}[{extra}] needs {sub.name}"


def test_the_image_installs_from_the_lock_and_pins_its_base_by_digest() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11\.\d+-slim-\w+@sha256:[0-9a-f]{64}$", dockerfile, re.M)
    installs = [line for line in dockerfile.splitlines() if line.startswith("RUN pip install")]
    assert installs[0].split()[-3:] == ["--require-hashes", "-r", "requirements.lock"]
    assert all("--no-deps" in line for line in installs[1:])  # nothing after the lock resolves dependencies


def test_every_long_running_compose_service_comes_back_after_it_dies() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name, spec in services.items():
        if name == "migrate":  # a one-shot job
            assert "restart" not in spec or spec["restart"] == "no"
            continue
        assert spec.get("restart") in ("unless-stopped", "always"), name

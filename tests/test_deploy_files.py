"""Procfile, docker-compose.yml and the Celery app agree; task names are a stable wire contract."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import yaml

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
    for name in ("worker", "beat", "flower"):
        assert shlex.split(procs[name])[:4] == ["celery", "-A", "autosync", name]
    assert shlex.split(procs["webhooks"]) == ["autosync", "webhooks"]
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
    assert "--basic-auth" in services["flower"]["command"]
    assert services["metrics"]["ports"] == ["127.0.0.1:8471:8471"]  # published on the host's loopback only
    assert services["worker"]["command"].split("-Q")[1].split()[0] == "autosync,autosync.google,autosync.outlook"


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
    for command in ("db", "sync", "handle", "emulator", "status", "run", "webhooks", "metrics"):
        assert command in out.stdout

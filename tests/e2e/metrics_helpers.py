"""Helpers for metrics tests: `autosync metrics` as a real process, scraped and parsed with prometheus_client."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.e2e.procs import BIN, ROOT


def free_port() -> int:
    """A free TCP port on localhost."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def metrics_process(env: dict[str, str] | None = None) -> Iterator[str]:
    """`autosync metrics` on a free loopback port, as its own process; yields the /metrics URL."""
    port = free_port()
    log = Path(f"/tmp/autosync-metrics-test-{os.getpid()}.log")
    with log.open("ab") as out:
        proc = subprocess.Popen([str(BIN / "autosync"), "metrics", "--port", str(port)], cwd=ROOT,
                                env=env or dict(os.environ), stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, f"autosync metrics exited: {log.read_text()[-2000:]}"
            try:
                if requests.get(base + "/healthz", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "autosync metrics did not start"
            time.sleep(0.1)
        yield base + "/metrics"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Scrape:
    """One parsed scrape: every sample, looked up by name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = list(text_string_to_metric_families(text))
        self.samples: list[Sample] = [s for f in self.families for s in f.samples]

    def names(self) -> set[str]:
        """Every series name the scrape exposes (sample names: autosync_runs_total, ..._bucket, ...)."""
        return {s.name for s in self.samples}

    def value(self, name: str, **labels: str) -> float:
        """The value of the one sample with this name whose labels include ``labels``; 0 when absent."""
        found = [s for s in self.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
        assert len(found) <= 1, f"{name}{labels} matches {len(found)} samples: {found}"
        return float(found[0].value) if found else 0.0

    def total(self, name: str, **labels: str) -> float:
        """The sum over every sample with this name whose labels include ``labels``."""
        return sum(float(s.value) for s in self.samples
                   if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))

    def by(self, name: str, *keys: str, **labels: str) -> dict[tuple[str, ...], float]:
        """Samples of a name (filtered by ``labels``) keyed by the values of ``keys``; zeros left out."""
        out: dict[tuple[str, ...], float] = {}
        for s in self.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()) and s.value:
                key = tuple(s.labels.get(k, "") for k in keys)
                out[key] = out.get(key, 0.0) + float(s.value)
        return out


def scrape(url: str) -> Scrape:
    """GET /metrics over HTTP and parse it with prometheus_client's own parser."""
    resp = requests.get(url, timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"].startswith("text/plain")
    return Scrape(resp.text)

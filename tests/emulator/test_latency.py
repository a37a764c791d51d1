"""Emulated provider latency: answers wait MS ± JITTER_MS, concurrently, per provider, endpoint and OAuth."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from autosync.emulator.client import EmulatorClient
from autosync.emulator.latency import parse_latency
from autosync.emulator.server import Emulator
from tests.emulator.conftest import GoogleUser, google_token

BIN = Path(sys.executable).parent


def _timed_list(user: GoogleUser) -> float:
    started = time.monotonic()
    assert user.list().status_code == 200
    return time.monotonic() - started


def test_concurrent_requests_wait_side_by_side_not_one_after_another(server: Emulator, admin: EmulatorClient,
                                                                     guser: GoogleUser) -> None:
    latency, n = 0.4, 12
    admin.set_latency(latency * 1000)
    sessions = [requests.Session() for _ in range(n)]
    for s in sessions:
        s.headers.update(guser.session.headers)
        s.get(guser.url(), timeout=5)  # connect first: measure answers, not connection set-up
    barrier = threading.Barrier(n)
    took: list[float] = []

    def fetch(s: requests.Session) -> None:
        barrier.wait()
        started = time.monotonic()
        assert s.get(guser.url(), timeout=10).status_code == 200
        took.append(time.monotonic() - started)

    started = time.monotonic()
    threads = [threading.Thread(target=fetch, args=(s,)) for s in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    assert len(took) == n and min(took) >= latency * 0.95  # every answer waited its latency
    # Serialized, 12 answers of 0.4 s take 4.8 s; overlapping, about one latency. The bound leaves
    # room for a loaded machine while failing for anything that waits under a shared lock.
    assert wall < latency * 3, f"{n} concurrent requests took {wall:.2f}s"


def test_jitter_spreads_answers_around_the_latency(admin: EmulatorClient, guser: GoogleUser) -> None:
    admin.set_latency(150, 100)
    took = [_timed_list(guser) for _ in range(12)]
    assert all(t >= 0.045 for t in took)
    assert max(took) - min(took) > 0.03  # not one fixed delay


def test_endpoint_and_oauth_rules_beat_the_provider_default(server: Emulator, admin: EmulatorClient,
                                                            guser: GoogleUser) -> None:
    admin.set_latency(300, provider="google")
    admin.set_latency(0, provider="google", endpoint="google.events.list")
    admin.set_latency(0, kind="oauth")
    assert _timed_list(guser) < 0.2  # the endpoint rule wins
    started = time.monotonic()
    assert google_token(server, guser.refresh_token).status_code == 200
    assert time.monotonic() - started < 0.2  # OAuth has its own setting
    started = time.monotonic()
    assert guser.session.get(guser.url("/no-such-event"), timeout=5).status_code == 404  # google.events.get
    assert time.monotonic() - started >= 0.28  # other Google endpoints take the provider's latency
    rules = admin.latency()
    assert {(r["provider"], r["kind"], r["endpoint"], r["ms"]) for r in rules} == {
        ("google", "all", None, 300), ("google", "all", "google.events.list", 0), ("any", "oauth", None, 0)}
    admin.reset()
    assert admin.latency() == []
    started = time.monotonic()
    assert guser.list().status_code == 401  # the reset forgot the account too
    assert time.monotonic() - started < 0.2


def test_admin_refuses_bad_latency_values(admin: EmulatorClient) -> None:
    for body in ({"ms": -5}, {"ms": 10, "jitter_ms": 20}, {"ms": "soon"}, {"provider": "yahoo", "ms": 1},
                 {"kind": "smtp", "ms": 1}, {"latency": "1:2:3"}):
        response = admin.session.post(admin.admin_url + "/latency", json=body, timeout=5)
        assert response.status_code == 400, body
    assert admin.latency() == []


def test_reset_restores_the_latency_the_emulator_was_started_with() -> None:
    with Emulator(latency=parse_latency("200:20"), oauth_latency=parse_latency("0")) as emu:
        client = EmulatorClient(emu.admin_url)
        client.clear_latency()
        client.reset()
        assert [(r["kind"], r["ms"], r["jitter_ms"]) for r in client.latency()] == [("all", 200, 20),
                                                                                    ("oauth", 0, 0)]


@pytest.mark.parametrize("value", ["abc", "-1", "100:150", "nan", "1:2:3", ""])
def test_cli_refuses_an_invalid_latency_naming_the_option(value: str) -> None:
    for argv in (["emulator", "--latency", value], ["emulator", "--oauth-latency", value],
                 ["run", "--demo", "--latency", value]):
        done = subprocess.run([str(BIN / "autosync"), *argv], capture_output=True, text=True, timeout=60)
        assert done.returncode == 2
        assert f"argument {argv[-2]}:" in done.stderr, done.stderr


def test_standalone_emulator_answers_after_its_latency() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(BIN / "autosync"), "emulator", "--port", str(port), "--latency", "250:50"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                requests.get(f"{base}/_admin/state", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        client = EmulatorClient(base + "/_admin")
        refresh = client.create_account("google", "ann@example.com")["refresh_token"]
        started = time.monotonic()
        requests.post(f"{base}/google/token", data={"grant_type": "refresh_token", "client_id": "google-client-id",
                                                    "client_secret": "google-secret", "refresh_token": refresh},
                      timeout=5).raise_for_status()
        assert time.monotonic() - started >= 0.19  # OAuth follows --latency unless --oauth-latency is given
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert "250 ± 50 ms" in out

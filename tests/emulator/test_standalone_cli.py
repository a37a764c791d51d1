"""`autosync emulator --port N --seed FILE` serves a seeded emulator as its own process."""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import requests

from autosync.emulator.generator import generate_google_events, google_account, seed_document

BIN = Path(sys.executable).parent


def test_standalone_emulator_serves_its_seed_over_http(tmp_path: Path) -> None:
    events = generate_google_events(random.Random(3), 25, now=datetime.now(UTC))
    seed = seed_document([google_account("acct-1", "ann@example.com", "1//seeded-refresh", events)])
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(seed))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(BIN / "autosync"), "emulator", "--port", str(port), "--seed", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                requests.get(f"{base}/_admin/state", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        token = requests.post(f"{base}/google/token", data={
            "grant_type": "refresh_token", "client_id": "google-client-id", "client_secret": "google-secret",
            "refresh_token": "1//seeded-refresh"}, timeout=5).json()["access_token"]
        listed = requests.get(f"{base}/google/calendar/v3/calendars/primary/events",
                              params={"maxResults": "2500", "showDeleted": "true"},
                              headers={"Authorization": f"Bearer {token}"}, timeout=5).json()
        assert len(listed["items"]) >= 25 and listed["nextSyncToken"]
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert str(port) in out  # it printed its URLs

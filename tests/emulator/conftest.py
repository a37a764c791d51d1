"""Fixtures of the emulator core tests: an in-process Emulator on a free port, admin client, Google user."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from autosync.emulator.client import EmulatorClient
from autosync.emulator.server import Emulator

GOOGLE_SAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "provider-samples" / "google"
MS_SCOPE = "offline_access https://graph.microsoft.com/Calendars.ReadWrite"


def google_sample(name: str) -> Any:
    """A Google sample payload; skips the test when ../shared is absent."""
    path = GOOGLE_SAMPLES / name
    if not path.exists():
        pytest.skip(f"provider samples not found at {GOOGLE_SAMPLES} (../shared is outside the repo)")
    return json.loads(path.read_text(encoding="utf-8"))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(value)]


def shape(expected: Any, actual: Any, path: str = "$") -> list[str]:
    """Differences in shape: keys of `expected` missing from `actual` or of another JSON type."""
    if _json_type(expected) != _json_type(actual):
        return [f"{path}: {_json_type(expected)} expected, got {_json_type(actual)}"]
    problems: list[str] = []
    if isinstance(expected, dict):
        for key, value in expected.items():
            if key not in actual:
                problems.append(f"{path}.{key}: missing")
            else:
                problems.extend(shape(value, actual[key], f"{path}.{key}"))
    elif isinstance(expected, list) and expected:
        if not actual:
            return [f"{path}: non-empty array expected"]
        problems.extend(shape(expected[0], actual[0], f"{path}[0]"))
    return problems


@pytest.fixture(scope="module")
def server() -> Iterator[Emulator]:
    """One emulator per test module, on a free port."""
    with Emulator() as emu:
        yield emu


@pytest.fixture()
def admin(server: Emulator) -> EmulatorClient:
    """Admin client of an emptied emulator."""
    client = EmulatorClient(server.admin_url)
    client.reset()
    return client


@dataclass
class GoogleUser:
    """A Google account with a live access token and a keep-alive session."""

    account_id: str
    refresh_token: str
    calendar_id: str
    api: str
    session: requests.Session

    def url(self, path: str = "", calendar: str = "primary") -> str:
        """URL of `calendars/{calendar}/events{path}`."""
        return f"{self.api}/calendars/{calendar}/events{path}"

    def insert(self, body: dict[str, Any], **params: str) -> dict[str, Any]:
        """Insert via the API; asserts 200."""
        response = self.session.post(self.url(), json=body, params=params)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def list(self, **params: Any) -> requests.Response:
        """events.list on the primary calendar."""
        return self.session.get(self.url(), params=params)

    def sync_token(self, **params: Any) -> str:
        """Full sync through every page; returns nextSyncToken."""
        page_token = None
        while True:
            query = dict(params, **({"pageToken": page_token} if page_token else {}))
            body = self.list(**query).json()
            if "nextSyncToken" in body:
                return str(body["nextSyncToken"])
            page_token = body["nextPageToken"]


def google_token(server: Emulator, refresh_token: str, **extra: str) -> requests.Response:
    """POST the Google refresh grant."""
    form = {
        "grant_type": "refresh_token",
        "client_id": "google-client-id",
        "client_secret": "google-secret",
        "refresh_token": refresh_token,
        **extra,
    }
    return requests.post(server.google_token_url, data=form, timeout=5)


def outlook_token(server: Emulator, refresh_token: str, **extra: str) -> requests.Response:
    """POST the Microsoft refresh grant."""
    form = {
        "grant_type": "refresh_token",
        "client_id": "outlook-client-id",
        "client_secret": "outlook-secret",
        "scope": MS_SCOPE,
        "refresh_token": refresh_token,
        **extra,
    }
    return requests.post(server.outlook_token_url, data=form, timeout=5)


@pytest.fixture()
def guser(server: Emulator, admin: EmulatorClient) -> GoogleUser:
    """A fresh Google account (alice@example.com) with an access token."""
    created = admin.create_account("google", "alice@example.com", account_id="alice")
    token = google_token(server, created["refresh_token"]).json()["access_token"]
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    return GoogleUser("alice", created["refresh_token"], created["calendar_id"], server.google_api_url, session)


def timed(summary: str, start: str, end: str, tz: str = "Europe/Berlin", **extra: Any) -> dict[str, Any]:
    """A timed Google event body."""
    return {
        "summary": summary,
        "start": {"dateTime": start, "timeZone": tz},
        "end": {"dateTime": end, "timeZone": tz},
        **extra,
    }

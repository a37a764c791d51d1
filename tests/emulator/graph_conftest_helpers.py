"""Helpers of the Graph emulator tests: a mailbox over real HTTP, the sample folder, a shape comparer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from autosync.emulator.server import Emulator

SAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "provider-samples" / "graph"
SCOPE = "offline_access https://graph.microsoft.com/Calendars.ReadWrite"
WINDOW = {"startDateTime": "2024-05-01T00:00:00Z", "endDateTime": "2024-07-01T00:00:00Z"}


def sample(name: str) -> Any:
    """A Graph sample payload; skips the test when the shared folder is absent."""
    path = SAMPLES / name
    if not path.exists():
        pytest.skip(
            f"provider samples not found at {SAMPLES} (../shared/provider-samples is outside the repo)"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def json_type(value: Any) -> str:
    """JSON type name (bool and number kept apart)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(value)]


def shape_diff(expected: Any, actual: Any, path: str = "$", skip: frozenset[str] = frozenset()) -> list[str]:
    """Where ``actual`` lacks a key of ``expected`` or has another JSON type; lists by first element."""
    if json_type(expected) != json_type(actual):
        return [f"{path}: {json_type(expected)} expected, got {json_type(actual)}"]
    problems: list[str] = []
    if isinstance(expected, dict):
        for key, value in expected.items():
            if key in skip:
                continue
            if key not in actual:
                problems.append(f"{path}.{key}: missing")
            else:
                problems.extend(shape_diff(value, actual[key], f"{path}.{key}", skip))
    elif isinstance(expected, list) and expected and actual:
        problems.extend(shape_diff(expected[0], actual[0], f"{path}[0]", skip))
    elif isinstance(expected, list) and expected and not actual:
        problems.append(f"{path}: non-empty array expected")
    return problems


class Mailbox:
    """One Outlook mailbox of the emulator, used through its HTTP API like a client would."""

    def __init__(self, emu: Emulator, email: str) -> None:
        self.emu = emu
        self.http = requests.Session()
        made = self.http.post(
            f"{emu.admin_url}/accounts", json={"provider": "outlook", "email": email}
        ).json()
        self.account_id: str = made["account_id"]
        self.calendar_id: str = made["calendar_id"]
        token = self.http.post(
            emu.outlook_token_url,
            data={
                "grant_type": "refresh_token",
                "refresh_token": made["refresh_token"],
                "client_id": "outlook-client-id",
                "client_secret": "outlook-secret",
                "scope": SCOPE,
            },
        ).json()
        self.auth = {"Authorization": f"Bearer {token['access_token']}"}

    def url(self, path: str) -> str:
        """Absolute URL for a path under /graph/v1.0 (absolute links pass through untouched)."""
        return path if path.startswith("http") else self.emu.graph_api_url + path

    def call(
        self,
        method: str,
        path: str,
        *,
        prefer: list[str] | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """One API request; ``prefer`` entries become one Prefer header each (comma-joined)."""
        sent = dict(self.auth)
        if prefer:
            sent["Prefer"] = ", ".join(prefer)
        sent.update(headers or {})
        return self.http.request(method, self.url(path), headers=sent, **kwargs)

    def create(self, body: dict[str, Any], calendar_id: str | None = None) -> dict[str, Any]:
        """POST an event to a calendar (default: this mailbox's calendar); asserts 201."""
        resp = self.call("POST", f"/me/calendars/{calendar_id or self.calendar_id}/events", json=body)
        assert resp.status_code == 201, resp.text
        return dict(resp.json())

    def admin(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A request to /_admin/outlook/..."""
        return self.http.request(method, f"{self.emu.admin_url}/outlook{path}", **kwargs)

    def delta_round(
        self, first_url: str, params: dict[str, str] | None = None, prefer: list[str] | None = None
    ) -> tuple[list[dict[str, Any]], str, int]:
        """Follow nextLinks verbatim to the deltaLink: (items, deltaLink, pages)."""
        items: list[dict[str, Any]] = []
        resp = self.call("GET", first_url, params=params, prefer=prefer)
        pages = 0
        while True:
            assert resp.status_code == 200, resp.text
            body = resp.json()
            pages += 1
            items.extend(body["value"])
            assert ("@odata.nextLink" in body) != ("@odata.deltaLink" in body)
            if "@odata.deltaLink" in body:
                return items, body["@odata.deltaLink"], pages
            resp = self.call("GET", body["@odata.nextLink"], prefer=prefer)


def timed(subject: str, start: str, end: str, zone: str = "UTC", **extra: Any) -> dict[str, Any]:
    """A timed event body."""
    return {
        "subject": subject,
        "start": {"dateTime": start, "timeZone": zone},
        "end": {"dateTime": end, "timeZone": zone},
        **extra,
    }


def weekly(
    subject: str, start: str, end: str, days: list[str], until: str, zone: str = "UTC"
) -> dict[str, Any]:
    """A weekly series body ending on ``until``."""
    return timed(
        subject,
        start,
        end,
        zone,
        recurrence={
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": days},
            "range": {"type": "endDate", "startDate": start[:10], "endDate": until},
        },
    )


def running_emulator() -> Iterator[Emulator]:
    """Body of a module-scoped fixture: a started emulator, stopped afterwards."""
    emu = Emulator().start()
    try:
        yield emu
    finally:
        emu.stop()

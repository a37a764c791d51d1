"""The emulator's HTTP server: keep-alive without Nagle stalls, routing, URLs, seeding at construction."""

from __future__ import annotations

import random
import socket
import struct
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

import requests

from autosync.emulator.client import EmulatorClient
from autosync.emulator.generator import generate_google_events, google_account, seed_document
from autosync.emulator.server import Emulator
from tests.emulator.conftest import GoogleUser, google_token


def test_fifty_sequential_keep_alive_requests_take_under_a_second(guser: GoogleUser) -> None:
    guser.list()
    started = time.perf_counter()
    for _ in range(50):
        assert guser.list().status_code == 200
    assert time.perf_counter() - started < 1.0


def test_urls_and_unknown_routes(server: Emulator) -> None:
    assert server.google_token_url == server.base_url + "/google/token"
    assert server.google_api_url.endswith("/google/calendar/v3")
    assert server.outlook_token_url.endswith("/microsoft/common/oauth2/v2.0/token")
    assert server.graph_api_url.endswith("/graph/v1.0") and server.admin_url.endswith("/_admin")
    assert requests.get(server.base_url + "/nope", timeout=5).status_code == 404
    assert requests.get(server.admin_url + "/nope", timeout=5).status_code == 404


def test_responses_carry_content_length_and_json_type(guser: GoogleUser) -> None:
    response = guser.list()
    assert response.headers["Content-Length"] == str(len(response.content))
    assert response.headers["Content-Type"].startswith("application/json")


def test_seed_at_construction_with_generated_events_serves_them() -> None:
    now = datetime(2024, 5, 1, tzinfo=UTC)
    events = generate_google_events(random.Random(7), 300, now=now)
    doc = seed_document([google_account("acct-1", "alice@example.com", "rt-alice", events)])
    with Emulator(seed=doc) as emu:
        token = google_token(emu, "rt-alice").json()["access_token"]
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        seen, page = 0, None
        while True:
            params = {"maxResults": 100, "showDeleted": "true", **({"pageToken": page} if page else {})}
            body = session.get(emu.google_api_url + "/calendars/primary/events", params=params).json()
            seen += len(body["items"])
            page = body.get("nextPageToken")
            if page is None:
                break
        assert seen == len(events)
        expanded = session.get(
            emu.google_api_url + "/calendars/primary/events",
            params={"singleEvents": "true", "maxResults": 2500},
        ).json()
        assert len(expanded["items"]) > 0


def test_generator_makes_realistic_mix_quickly() -> None:
    now = datetime(2024, 5, 1, tzinfo=UTC)
    started = time.perf_counter()
    events = generate_google_events(random.Random(1), 5000, now=now)
    assert time.perf_counter() - started < 2.0
    masters = [e for e in events if e.get("recurrence")]
    all_day = [e for e in events if "date" in e["start"]]
    assert 0.07 < len(masters) / 5000 < 0.13 and 0.1 < len(all_day) / 5000 < 0.2
    assert any(e.get("status") == "cancelled" for e in events)
    assert any("recurringEventId" in e and e.get("status") == "confirmed" for e in events)
    assert any("conferenceData" in e for e in events) and any("attachments" in e for e in events)
    assert len({e["id"] for e in events}) == len(events)


def test_admin_client_accounts_and_calendars(admin: EmulatorClient) -> None:
    created = admin.create_account("google", "bob@example.com", account_id="bob")
    assert created["account_id"] == "bob" and created["calendar_id"] == "bob@example.com"
    extra = admin.create_calendar("bob", name="Work")
    assert extra.endswith("@group.calendar.google.com")
    state = admin.state()
    assert [c["calendar_id"] for c in state["accounts"][0]["calendars"]] == ["bob@example.com", extra]


def test_a_client_that_hangs_up_before_its_answer_leaves_no_traceback(
        server: Emulator, admin: EmulatorClient, guser: GoogleUser, capsys) -> None:
    admin.set_latency(150, provider="google", endpoint="google.events.list")
    host, port = urlsplit(server.base_url).hostname, urlsplit(server.base_url).port
    request = (f"GET {urlsplit(guser.url()).path} HTTP/1.1\r\nHost: {host}\r\n"
               f"Authorization: {guser.session.headers['Authorization']}\r\n\r\n").encode()
    for _ in range(3):  # as a killed worker does: ask, then drop the connection with a reset
        with socket.create_connection((host, port)) as conn:
            conn.sendall(request)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    time.sleep(0.6)  # the answers are written (and fail) after the 150 ms
    assert guser.list().status_code == 200  # the server goes on
    assert "Traceback" not in capsys.readouterr().err

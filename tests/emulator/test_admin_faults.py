"""Fault injection and quotas of the emulator over real HTTP (status, reset, slow, malformed; 403/429)."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from autosync.emulator.client import EmulatorClient
from autosync.emulator.server import Emulator
from tests.emulator.conftest import GoogleUser, google_token, outlook_token


def test_status_fault_fails_next_n_matching_calls_then_recovers(guser: GoogleUser, admin: EmulatorClient) -> None:
    admin.add_fault(
        "status",
        count=2,
        provider="google",
        endpoint="google.events.list",
        status=503,
        headers={"Retry-After": "2"},
    )
    first, second, third = (guser.list() for _ in range(3))
    assert first.status_code == second.status_code == 503 and third.status_code == 200
    assert first.headers["Retry-After"] == "2"
    assert first.json()["error"]["errors"][0]["reason"] == "backendError"
    assert admin.faults()[0]["count"] == 0
    log = admin.requests(endpoint="google.events.list")
    assert [r["status"] for r in log["requests"]] == [503, 503, 200]


def test_fault_matching_by_account_calendar_and_endpoint(guser: GoogleUser, admin: EmulatorClient) -> None:
    admin.add_fault("status", count=5, account="someone-else", status=500)
    admin.add_fault("status", count=5, endpoint="google.events.insert", status=500)
    admin.add_fault("status", count=5, calendar="other@group.calendar.google.com", status=500)
    assert guser.list().status_code == 200
    admin.clear_faults()
    assert admin.faults() == []
    admin.add_fault("status", count=1, calendar=guser.calendar_id, status=500, body={"custom": True})
    failed = guser.list()
    assert failed.status_code == 500 and failed.json() == {"custom": True}


def test_reset_fault_drops_the_connection(guser: GoogleUser, admin: EmulatorClient) -> None:
    admin.add_fault("reset", count=1, provider="google")
    with pytest.raises(requests.ConnectionError):
        guser.list()
    assert guser.list().status_code == 200


def test_slow_fault_exceeds_client_read_timeout_then_answers(guser: GoogleUser, admin: EmulatorClient) -> None:
    admin.add_fault("slow", count=1, provider="google", delay=0.5)
    with pytest.raises(requests.ReadTimeout):
        guser.session.get(guser.url(), timeout=0.2)
    # The emulator still answers the abandoned request once its delay is over (and counts it against
    # any quota then): wait for that, so it cannot land in the next test on this module's emulator.
    deadline = time.monotonic() + 5
    while admin.requests(endpoint="google.events.list")["total"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert admin.requests(endpoint="google.events.list")["total"] == 1
    assert guser.session.get(guser.url(), timeout=2).status_code == 200


def test_malformed_fault_answers_200_with_broken_json(guser: GoogleUser, admin: EmulatorClient) -> None:
    admin.add_fault("malformed", count=1, provider="google")
    response = guser.list()
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()


def test_faults_apply_to_token_endpoints(server: Emulator, admin: EmulatorClient) -> None:
    google = admin.create_account("google", "a@example.com")
    outlook = admin.create_account("outlook", "o@example.com")
    admin.add_fault("status", count=1, provider="google", endpoint="google.token", status=503)
    admin.add_fault(
        "status",
        count=1,
        provider="outlook",
        account=outlook["account_id"],
        status=429,
        headers={"Retry-After": "1"},
    )
    assert google_token(server, google["refresh_token"]).status_code == 503
    assert google_token(server, google["refresh_token"]).status_code == 200
    throttled = outlook_token(server, outlook["refresh_token"])
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "1"
    assert outlook_token(server, outlook["refresh_token"]).status_code == 200
    assert admin.requests(endpoint="outlook.token")["total"] == 2


def test_google_quota_alternates_real_rate_limit_variants(guser: GoogleUser, admin: EmulatorClient) -> None:
    admin.set_quota("google", requests_per_window=2, window_seconds=60)
    assert [guser.list().status_code for _ in range(2)] == [200, 200]
    answers = [guser.list() for _ in range(3)]
    seen = {(r.status_code, r.json()["error"]["errors"][0]["reason"]) for r in answers}
    assert seen == {(403, "rateLimitExceeded"), (403, "userRateLimitExceeded"), (429, "rateLimitExceeded")}
    assert all(r.json()["error"]["errors"][0]["domain"] == "usageLimits" for r in answers)
    admin.set_quota("google", variant="403-quotaExceeded")
    assert guser.list().status_code == 200  # setting a quota restarts the window
    guser.list()
    exceeded = guser.list().json()["error"]
    assert exceeded["code"] == 403 and exceeded["errors"][0]["reason"] == "quotaExceeded"


def test_admin_calls_are_not_logged_and_log_can_be_cleared(guser: GoogleUser, admin: EmulatorClient) -> None:
    admin.clear_requests()
    guser.list()
    admin.state()
    admin.faults()
    assert admin.requests()["total"] == 1
    admin.clear_requests()
    assert admin.requests()["total"] == 0


def test_reset_forgets_accounts_and_state_round_trips_through_seed(guser: GoogleUser, admin: EmulatorClient) -> None:
    guser.insert({"summary": "kept", "start": {"date": "2024-06-03"}, "end": {"date": "2024-06-04"}})
    dumped = admin.state()
    admin.reset()
    assert admin.state()["accounts"] == []
    assert guser.list().status_code == 401
    admin.seed(dumped)
    events = admin.google_list(guser.calendar_id)
    assert [e["summary"] for e in events] == ["kept"]
    refreshed = requests.post(
        guser.api.replace("/google/calendar/v3", "/google/token"),
        data={
            "grant_type": "refresh_token",
            "client_id": "google-client-id",
            "client_secret": "google-secret",
            "refresh_token": guser.refresh_token,
        },
        timeout=5,
    )
    assert refreshed.status_code == 200


def test_outlook_concurrency_limit_answers_application_throttled(server: Emulator, admin: EmulatorClient) -> None:
    if server.graph is None:
        pytest.skip("Graph module not present")
    created = admin.create_account("outlook", "o@example.com")
    access = outlook_token(server, created["refresh_token"]).json()["access_token"]
    headers = {"Authorization": f"Bearer {access}"}
    admin.add_fault("slow", count=4, provider="outlook", delay=0.6)
    url = server.graph_api_url + "/me/events"
    threads = [
        threading.Thread(target=requests.get, args=(url,), kwargs={"headers": headers, "timeout": 5}) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    fifth = requests.get(url, headers=headers, timeout=5)
    for thread in threads:
        thread.join()
    assert fifth.status_code == 429 and "Retry-After" in fifth.headers
    assert fifth.json()["error"]["code"] == "ApplicationThrottled"
    assert requests.get(url, headers=headers, timeout=5).status_code == 200


def test_outlook_request_quota_answers_429_with_retry_after(server: Emulator, admin: EmulatorClient) -> None:
    if server.graph is None:
        pytest.skip("Graph module not present")
    created = admin.create_account("outlook", "o@example.com")
    access = outlook_token(server, created["refresh_token"]).json()["access_token"]
    admin.set_quota("outlook", requests_per_window=1, window_seconds=60, retry_after=7, variant="TooManyRequests")
    url = server.graph_api_url + "/me/events"
    assert requests.get(url, headers={"Authorization": f"Bearer {access}"}, timeout=5).status_code == 200
    throttled = requests.get(url, headers={"Authorization": f"Bearer {access}"}, timeout=5)
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "7"
    assert throttled.json()["error"]["code"] == "TooManyRequests"

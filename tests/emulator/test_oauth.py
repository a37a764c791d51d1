"""Token endpoints of the emulator over real HTTP (Google and Microsoft token refresh, provider rules 15 and 17)."""

from __future__ import annotations

import time

import requests

from autosync.emulator.client import EmulatorClient
from autosync.emulator.server import Emulator
from tests.emulator.conftest import google_token, outlook_token


def test_google_refresh_returns_bearer_with_integer_expiry_and_keeps_refresh_token(
    server: Emulator, admin: EmulatorClient
) -> None:
    created = admin.create_account("google", "a@example.com")
    first = google_token(server, created["refresh_token"])
    second = google_token(server, created["refresh_token"])
    assert first.status_code == second.status_code == 200
    body = first.json()
    assert set(body) == {"access_token", "expires_in", "scope", "token_type"}
    assert body["token_type"] == "Bearer" and isinstance(body["expires_in"], int)
    assert "refresh_token" not in body
    assert body["access_token"] != second.json()["access_token"]


def test_google_revoked_refresh_token_gets_invalid_grant_expired_or_revoked(
    server: Emulator, admin: EmulatorClient
) -> None:
    created = admin.create_account("google", "a@example.com")
    admin.revoke(created["account_id"])
    response = google_token(server, created["refresh_token"])
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "Token has been expired or revoked.",
    }
    fresh = admin.new_refresh_token(created["account_id"])
    assert google_token(server, fresh).status_code == 200


def test_google_unknown_refresh_token_and_bad_clients(server: Emulator, admin: EmulatorClient) -> None:
    created = admin.create_account("google", "a@example.com")
    assert google_token(server, "1//0gnope").json() == {
        "error": "invalid_grant",
        "error_description": "Bad Request",
    }
    wrong_id = google_token(server, created["refresh_token"], client_id="other")
    assert wrong_id.status_code == 401
    assert wrong_id.json() == {
        "error": "invalid_client",
        "error_description": "The OAuth client was not found.",
    }
    wrong_secret = google_token(server, created["refresh_token"], client_secret="nope")
    assert wrong_secret.status_code == 401 and wrong_secret.json()["error_description"] == "Unauthorized"


def test_microsoft_refresh_rotates_and_old_token_becomes_invalid_grant(server: Emulator, admin: EmulatorClient) -> None:
    created = admin.create_account("outlook", "o@example.com")
    first = outlook_token(server, created["refresh_token"])
    assert first.status_code == 200
    body = first.json()
    assert {"token_type", "scope", "expires_in", "ext_expires_in", "access_token", "refresh_token"} <= set(body)
    assert isinstance(body["expires_in"], int) and body["refresh_token"] != created["refresh_token"]
    reused = outlook_token(server, created["refresh_token"])
    assert reused.status_code == 400
    error = reused.json()
    assert error["error"] == "invalid_grant" and error["error_codes"] == [70008]
    assert {"error_description", "timestamp", "trace_id", "correlation_id"} <= set(error)
    assert error["error_description"].startswith("AADSTS70008:")
    assert outlook_token(server, body["refresh_token"]).status_code == 200


def test_microsoft_revoked_gets_aadsts700082_and_missing_scope_invalid_request(
    server: Emulator, admin: EmulatorClient
) -> None:
    created = admin.create_account("outlook", "o@example.com")
    no_scope = outlook_token(server, created["refresh_token"], scope="")
    assert no_scope.status_code == 400 and no_scope.json()["error"] == "invalid_request"
    admin.revoke(created["account_id"])
    revoked = outlook_token(server, created["refresh_token"]).json()
    assert revoked["error"] == "invalid_grant" and revoked["error_codes"] == [700082]


def test_microsoft_wrong_secret_is_invalid_client_401_on_any_tenant(server: Emulator, admin: EmulatorClient) -> None:
    created = admin.create_account("outlook", "o@example.com")
    form = {
        "grant_type": "refresh_token",
        "client_id": "outlook-client-id",
        "client_secret": "bad",
        "scope": "offline_access Calendars.ReadWrite",
        "refresh_token": created["refresh_token"],
    }
    url = server.base_url + "/microsoft/organizations/oauth2/v2.0/token"
    response = requests.post(url, data=form, timeout=5)
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


def test_tokens_are_not_valid_on_the_other_provider_and_401_bodies_are_real(
    server: Emulator, admin: EmulatorClient
) -> None:
    google = admin.create_account("google", "a@example.com")
    g_access = google_token(server, google["refresh_token"]).json()["access_token"]
    g_headers = {"Authorization": f"Bearer {g_access}"}
    graph = requests.get(server.graph_api_url + "/me/events", headers=g_headers, timeout=5)
    assert graph.status_code == 401
    assert graph.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert "innerError" in graph.json()["error"]
    outlook = admin.create_account("outlook", "o@example.com")
    o_access = outlook_token(server, outlook["refresh_token"]).json()["access_token"]
    cal = requests.get(
        server.google_api_url + "/calendars/primary/events",
        headers={"Authorization": f"Bearer {o_access}"},
        timeout=5,
    )
    assert cal.status_code == 401
    assert cal.json()["error"]["errors"][0]["reason"] == "authError"


def test_expired_access_tokens_answer_401_until_refreshed(server: Emulator, admin: EmulatorClient) -> None:
    created = admin.create_account("google", "a@example.com")
    access = google_token(server, created["refresh_token"]).json()["access_token"]
    headers = {"Authorization": f"Bearer {access}"}
    url = server.google_api_url + "/calendars/primary/events"
    assert requests.get(url, headers=headers, timeout=5).status_code == 200
    admin.expire_access_tokens(created["account_id"])
    assert requests.get(url, headers=headers, timeout=5).status_code == 401
    fresh = google_token(server, created["refresh_token"]).json()["access_token"]
    assert requests.get(url, headers={"Authorization": f"Bearer {fresh}"}, timeout=5).status_code == 200


def test_access_token_lifetime_follows_ttl() -> None:
    with Emulator(access_token_ttl=1) as emu:
        client = EmulatorClient(emu.admin_url)
        created = client.create_account("google", "a@example.com")
        body = google_token(emu, created["refresh_token"]).json()
        assert body["expires_in"] == 1
        time.sleep(1.1)
        headers = {"Authorization": f"Bearer {body['access_token']}"}
        url = emu.google_api_url + "/calendars/primary/events"
        assert requests.get(url, headers=headers, timeout=5).status_code == 401

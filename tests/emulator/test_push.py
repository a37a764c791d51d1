"""Push notifications of the emulator over real HTTP: Google channels and Graph subscriptions."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from autosync.emulator.client import EmulatorClient
from autosync.emulator.server import Emulator
from tests.emulator.conftest import GoogleUser, google_token, timed
from tests.emulator.graph_conftest_helpers import Mailbox
from tests.emulator.graph_conftest_helpers import timed as graph_timed

GOOGLE_HEADERS = {
    "X-Goog-Channel-ID",
    "X-Goog-Channel-Expiration",
    "X-Goog-Resource-ID",
    "X-Goog-Resource-URI",
    "X-Goog-Resource-State",
    "X-Goog-Message-Number",
}


# --- a webhook receiver ----------------------------------------------------------------------------


@dataclass
class Hit:
    """One request the receiver got."""

    path: str
    query: dict[str, list[str]]
    raw_query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A webhook receiver on 127.0.0.1: records every POST, answers scripted statuses, echoes validation."""

    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self.statuses: deque[int] = deque()  # scripted answers to notifications, then `default`
        self.default = 202
        self.validation = "echo"  # echo | json | wrong | 500 | slow
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                split = urlsplit(self.path)
                hit = Hit(split.path, parse_qs(split.query), split.query, dict(self.headers.items()), body)
                with receiver.lock:
                    receiver.hits.append(hit)
                    status = receiver.statuses.popleft() if receiver.statuses else receiver.default
                token = hit.query.get("validationToken", [None])[0]
                if token is not None:
                    self._validation(token)
                else:
                    self._answer(status, b"", "text/plain")

            def _validation(self, token: str) -> None:
                mode = receiver.validation
                if mode == "slow":
                    time.sleep(0.5)
                if mode == "json":
                    self._answer(200, json.dumps(token).encode(), "application/json")
                elif mode == "wrong":
                    self._answer(200, b"not the token", "text/plain")
                elif mode == "500":
                    self._answer(500, token.encode(), "text/plain")
                else:
                    self._answer(200, token.encode(), "text/plain; charset=utf-8")

            def _answer(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}{path}"

    def at(self, path: str) -> list[Hit]:
        """Hits on one path, validation requests left out."""
        with self.lock:
            return [h for h in self.hits if h.path == path and "validationToken" not in h.query]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.close()


def _user(server: Emulator, admin: EmulatorClient, email: str, account_id: str) -> GoogleUser:
    created = admin.create_account("google", email, account_id=account_id)
    token = google_token(server, created["refresh_token"]).json()["access_token"]
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    return GoogleUser(account_id, created["refresh_token"], created["calendar_id"], server.google_api_url, session)


def _watch(user: GoogleUser, address: str, channel_id: str = "chan-1", **extra: Any) -> requests.Response:
    body = {"id": channel_id, "type": "web_hook", "address": address, **extra}
    return user.session.post(user.url("/watch"), json=body)


def _stop(user: GoogleUser, channel_id: str, resource_id: str) -> requests.Response:
    return user.session.post(f"{user.api}/channels/stop", json={"id": channel_id, "resourceId": resource_id})


EVENT = timed("Standup", "2024-05-13T09:00:00", "2024-05-13T09:15:00")


# --- Google --------------------------------------------------------------------------------------


def test_watch_answers_a_channel_and_sends_sync_first_then_exists_on_api_and_person_edits(
    guser: GoogleUser, admin: EmulatorClient, receiver: Receiver
) -> None:
    before_ms = int(time.time() * 1000)
    response = _watch(guser, receiver.url(), token="acct=42&sig=x")
    assert response.status_code == 200, response.text
    channel = response.json()
    assert set(channel) == {"kind", "id", "resourceId", "resourceUri", "token", "expiration"}
    assert channel["kind"] == "api#channel" and channel["id"] == "chan-1" and channel["token"] == "acct=42&sig=x"
    assert isinstance(channel["expiration"], str)
    assert abs(int(channel["expiration"]) - (before_ms + 604800 * 1000)) < 5000  # default max TTL: 7 days
    assert channel["resourceUri"] == f"{guser.api}/calendars/primary/events?alt=json"
    admin.wait_push_idle()
    [sync] = receiver.at("/hook")
    assert sync.body == b""
    assert sync.headers["X-Goog-Resource-State"] == "sync" and sync.headers["X-Goog-Message-Number"] == "1"

    event = guser.insert(EVENT)
    admin.wait_push_idle()
    admin.google_patch(guser.calendar_id, event["id"], {"summary": "Standup (moved)"})
    admin.wait_push_idle()
    hits = receiver.at("/hook")
    assert [h.headers["X-Goog-Resource-State"] for h in hits] == ["sync", "exists", "exists"]
    numbers = [int(h.headers["X-Goog-Message-Number"]) for h in hits]
    assert numbers == sorted(numbers) and len(set(numbers)) == 3
    exists = hits[1].headers
    assert GOOGLE_HEADERS | {"X-Goog-Channel-Token"} <= set(exists)
    assert exists["X-Goog-Channel-ID"] == "chan-1" and exists["X-Goog-Channel-Token"] == "acct=42&sig=x"
    assert exists["X-Goog-Resource-ID"] == channel["resourceId"]
    assert exists["X-Goog-Resource-URI"] == channel["resourceUri"]
    assert exists["X-Goog-Channel-Expiration"] == formatdate(int(channel["expiration"]) / 1000, usegmt=True)
    assert exists["Content-Type"] == "application/json; utf-8" and exists["Content-Length"] == "0"

    log = admin.push_deliveries("google")
    assert [(d["kind"], d["status"], d["attempt"]) for d in log] == [("sync", 202, 1)] + [("exists", 202, 1)] * 2
    assert log[0]["id"] == "chan-1" and log[0]["url"] == receiver.url() and log[0]["body"] is None
    assert log[0]["headers"]["X-Goog-Resource-State"] == "sync"
    state = admin.push_state()["channels"][0]
    assert state["message_number"] == 3 and state["live"] and not state["stopped"]
    calls = admin.requests(endpoint="google.events.watch")["requests"]
    assert [(c["status"], c["calendar"]) for c in calls] == [(200, guser.calendar_id)]


def test_token_header_only_when_given_and_resource_id_stable_per_calendar(
    guser: GoogleUser, admin: EmulatorClient, receiver: Receiver
) -> None:
    first = _watch(guser, receiver.url(), "no-token").json()
    second = _watch(guser, receiver.url("/other"), "with-token", token="t").json()
    assert "token" not in first and first["resourceId"] == second["resourceId"]
    admin.wait_push_idle()
    assert "X-Goog-Channel-Token" not in receiver.at("/hook")[0].headers
    assert receiver.at("/other")[0].headers["X-Goog-Channel-Token"] == "t"


def test_stop_ends_deliveries_and_unknown_or_foreign_channels_answer_404(
    server: Emulator, guser: GoogleUser, admin: EmulatorClient, receiver: Receiver
) -> None:
    channel = _watch(guser, receiver.url()).json()
    other = _user(server, admin, "bob@example.com", "bob")
    assert _stop(other, "chan-1", channel["resourceId"]).status_code == 404
    wrong = _stop(guser, "chan-1", "not-the-resource")
    assert wrong.status_code == 404 and wrong.json()["error"]["errors"][0]["reason"] == "notFound"
    assert _stop(guser, "nope", channel["resourceId"]).status_code == 404
    admin.wait_push_idle()
    stopped = _stop(guser, "chan-1", channel["resourceId"])
    assert stopped.status_code == 204 and stopped.content == b""
    assert _stop(guser, "chan-1", channel["resourceId"]).status_code == 404
    guser.insert(EVENT)
    admin.wait_push_idle()
    assert [h.headers["X-Goog-Resource-State"] for h in receiver.at("/hook")] == ["sync"]
    assert admin.push_state()["channels"][0]["stopped"] is True
    assert [c["status"] for c in admin.requests(endpoint="google.channels.stop")["requests"]] == [404] * 3 + [204, 404]


def test_watch_validation_duplicate_id_bad_address_and_unknown_calendar(
    guser: GoogleUser, admin: EmulatorClient, receiver: Receiver
) -> None:
    admin.push_settings(push_retries=0)  # the loopback and TLS addresses below refuse connections
    assert _watch(guser, receiver.url()).status_code == 200
    duplicate = _watch(guser, receiver.url())
    assert duplicate.status_code == 400
    assert duplicate.json()["error"]["errors"][0]["reason"] == "channelIdNotUnique"
    plain = _watch(guser, "http://example.com/hook", "c2")
    assert plain.status_code == 400
    assert plain.json()["error"]["errors"][0]["reason"] == "push.webhookUrlNotHttps"
    for body in ({"type": "web_hook", "address": receiver.url()}, {"id": "c3", "type": "email", "address": "x"}):
        assert guser.session.post(guser.url("/watch"), json=body).status_code == 400
    assert _watch(guser, receiver.url(), "c" * 65).status_code == 400
    unknown = guser.session.post(
        f"{guser.api}/calendars/nope@group.calendar.google.com/events/watch",
        json={"id": "c4", "type": "web_hook", "address": receiver.url()},
    )
    assert unknown.status_code == 404
    for host in ("localhost", "[::1]"):
        accepted = _watch(guser, f"http://{host}:1/hook", f"loop-{host.strip('[]:')}", type="webhook")
        assert accepted.status_code == 200, accepted.text
    assert _watch(guser, "https://127.0.0.1:1/hook", "tls").status_code == 200
    admin.wait_push_idle()
    refused = [d for d in admin.push_deliveries() if d["id"] == "tls"]
    assert len(refused) == 1 and refused[0]["status"] is None and "ConnectionError" in refused[0]["error"]


def test_push_endpoints_need_a_token_and_take_faults(
    guser: GoogleUser, server: Emulator, admin: EmulatorClient, receiver: Receiver
) -> None:
    body = {"id": "c", "type": "web_hook", "address": receiver.url()}
    assert requests.post(guser.url("/watch"), json=body, timeout=5).status_code == 401
    assert requests.post(server.graph_api_url + "/subscriptions", json={}, timeout=5).status_code == 401
    admin.add_fault("status", count=1, provider="google", endpoint="google.events.watch", status=503)
    assert _watch(guser, receiver.url()).status_code == 503
    assert _watch(guser, receiver.url()).status_code == 200
    box = Mailbox(server, "fault@contoso.com")
    admin.add_fault("status", count=1, provider="outlook", endpoint="graph.subscriptions.create", status=429)
    assert _subscribe(box, receiver).status_code == 429
    assert _subscribe(box, receiver).status_code == 201


def test_expiration_is_capped_to_the_max_ttl_and_a_channel_can_be_expired(
    guser: GoogleUser, admin: EmulatorClient, receiver: Receiver
) -> None:
    assert admin.push_settings(google_max_ttl=60)["google_max_ttl"] == 60
    now_ms = int(time.time() * 1000)
    capped = _watch(guser, receiver.url(), "a", expiration=now_ms + 3_600_000).json()
    assert abs(int(capped["expiration"]) - (now_ms + 60_000)) < 3000
    shorter = _watch(guser, receiver.url(), "b", expiration=str(now_ms + 30_000)).json()
    assert shorter["expiration"] == str(now_ms + 30_000)
    by_ttl = _watch(guser, receiver.url(), "c", params={"ttl": "20"}).json()
    assert abs(int(by_ttl["expiration"]) - (now_ms + 20_000)) < 3000
    assert _watch(guser, receiver.url(), "d", expiration=now_ms - 1000).status_code == 400
    admin.wait_push_idle()
    admin.push_expire("a")
    admin.push_expire("b")
    guser.insert(EVENT)
    admin.wait_push_idle()
    states = {h.headers["X-Goog-Channel-ID"]: h.headers["X-Goog-Resource-State"] for h in receiver.at("/hook")}
    assert states == {"a": "sync", "b": "sync", "c": "exists"}
    channels = {c["id"]: c for c in admin.push_state()["channels"]}
    assert channels["a"]["expired"] and not channels["a"]["live"] and channels["c"]["live"]
    assert _watch(guser, receiver.url(), "a").status_code == 200  # an expired channel's id is free again


def test_retries_on_503_with_backoff_but_not_on_404(
    guser: GoogleUser, admin: EmulatorClient, receiver: Receiver
) -> None:
    admin.push_settings(push_retry_delay=0.05)
    receiver.statuses.extend([503, 503, 200])
    _watch(guser, receiver.url(), "retry")
    admin.wait_push_idle()
    log = admin.push_deliveries()
    assert [(d["status"], d["attempt"]) for d in log] == [(503, 1), (503, 2), (200, 3)]
    assert log[1]["time"] - log[0]["time"] >= 0.045 and log[2]["time"] - log[1]["time"] >= 0.095  # doubling
    admin.clear_push_deliveries()
    receiver.statuses.extend([404])
    guser.insert(EVENT)
    admin.wait_push_idle()
    assert [(d["status"], d["attempt"]) for d in admin.push_deliveries()] == [(404, 1)]
    receiver.statuses.extend([500] * 5)
    admin.clear_push_deliveries()
    admin.push_settings(push_retries=2, push_retry_delay=0.01)
    guser.insert(timed("Another", "2024-05-14T09:00:00", "2024-05-14T09:15:00"))
    admin.wait_push_idle()
    assert [d["attempt"] for d in admin.push_deliveries()] == [1, 2, 3]


def test_paused_drops_change_notifications_and_reset_clears_everything(
    guser: GoogleUser, admin: EmulatorClient, receiver: Receiver
) -> None:
    _watch(guser, receiver.url())
    admin.wait_push_idle()
    assert admin.push_settings(paused=True)["paused"] is True
    guser.insert(EVENT)
    admin.wait_push_idle()
    assert len(receiver.at("/hook")) == 1
    admin.push_settings(paused=False)
    guser.insert(timed("Later", "2024-05-14T09:00:00", "2024-05-14T09:15:00"))
    admin.wait_push_idle()
    assert [h.headers["X-Goog-Resource-State"] for h in receiver.at("/hook")] == ["sync", "exists"]
    admin.push_settings(paused=True, google_max_ttl=5)
    admin.reset()
    assert admin.push_state() == {"channels": [], "subscriptions": []}
    assert admin.push_deliveries() == [] and admin.push_pending() == 0
    settings = admin.push_settings()
    assert settings["paused"] is False and settings["google_max_ttl"] == 604800


def test_push_admin_rejects_unknown_settings_and_targets(admin: EmulatorClient) -> None:
    with pytest.raises(requests.HTTPError) as bad:
        admin.push_settings(nope=1)
    assert bad.value.response.status_code == 400
    with pytest.raises(requests.HTTPError) as missing:
        admin.push_expire("nothing")
    assert missing.value.response.status_code == 404
    with pytest.raises(requests.HTTPError) as lifecycle:
        admin.push_lifecycle("nothing", "missed")
    assert lifecycle.value.response.status_code == 404


# --- Graph ---------------------------------------------------------------------------------------


def _in(minutes: float) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def _subscribe(box: Mailbox, receiver: Receiver, **extra: Any) -> requests.Response:
    body = {
        "changeType": "created,updated,deleted",
        "notificationUrl": receiver.url("/graph"),
        "lifecycleNotificationUrl": receiver.url("/life"),
        "resource": "me/events",
        "expirationDateTime": _in(60),
        "clientState": "s3cr3t",
        **extra,
    }
    return box.call("POST", "/subscriptions", json=body)


def test_create_validates_both_urls_with_a_decoded_plain_text_token(
    server: Emulator, admin: EmulatorClient, receiver: Receiver
) -> None:
    box = Mailbox(server, "ann@contoso.com")
    response = _subscribe(box, receiver)
    assert response.status_code == 201, response.text
    sub = response.json()
    for key in (
        "id",
        "resource",
        "applicationId",
        "changeType",
        "clientState",
        "notificationUrl",
        "lifecycleNotificationUrl",
        "expirationDateTime",
        "creatorId",
        "latestSupportedTlsVersion",
    ):
        assert key in sub, key
    assert sub["resource"] == "me/events" and sub["changeType"] == "created,updated,deleted"
    assert sub["applicationId"] == "outlook-client-id" and sub["creatorId"] == box.account_id
    assert len(sub["expirationDateTime"]) == 28 and sub["expirationDateTime"].endswith("Z")
    with receiver.lock:
        checks = [h for h in receiver.hits if "validationToken" in h.query]
    assert [h.path for h in checks] == ["/graph", "/life"]
    token = checks[0].query["validationToken"][0]
    assert token.startswith("Validation: Testing client application reachability for subscription Request-Id: ")
    assert "validationToken=Validation%3A+Testing" in checks[0].raw_query
    assert checks[0].headers["Content-Type"].startswith("text/plain") and checks[0].body == b""
    got = box.call("GET", f"/subscriptions/{sub['id']}")
    assert got.status_code == 200 and got.json()["id"] == sub["id"]
    kinds = [(d["kind"], d["status"]) for d in admin.push_deliveries("outlook")]
    assert kinds == [("validation", 200), ("validation", 200)]
    assert admin.requests(endpoint="graph.subscriptions")["by_endpoint"] == {
        "graph.subscriptions.create": 1,
        "graph.subscriptions.get": 1,
    }


@pytest.mark.parametrize("mode", ["json", "wrong", "500", "slow"])
def test_a_failed_validation_answers_400_and_creates_nothing(
    server: Emulator, admin: EmulatorClient, receiver: Receiver, mode: str
) -> None:
    admin.push_settings(validation_timeout=0.2)
    receiver.validation = mode
    box = Mailbox(server, "val@contoso.com")
    response = _subscribe(box, receiver)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "ValidationError"
    assert error["message"].startswith("Subscription validation request failed.")
    assert box.call("GET", "/subscriptions").json()["value"] == []
    assert admin.push_state()["subscriptions"] == []


def test_create_rejects_bad_expiration_url_resource_and_change_type(
    server: Emulator, admin: EmulatorClient, receiver: Receiver
) -> None:
    box = Mailbox(server, "bad@contoso.com")
    too_far = _subscribe(box, receiver, expirationDateTime=_in(10081))
    assert too_far.status_code == 400
    assert too_far.json()["error"]["message"] == "Subscription expiration can only be 10080 minutes in the future."
    assert _subscribe(box, receiver, expirationDateTime=_in(-1)).status_code == 400
    assert _subscribe(box, receiver, expirationDateTime=None).status_code == 400
    assert _subscribe(box, receiver, notificationUrl="http://example.com/hook").status_code == 400
    assert _subscribe(box, receiver, lifecycleNotificationUrl="http://example.com/life").status_code == 400
    assert _subscribe(box, receiver, resource="me/calendars/x/events").status_code == 400
    assert _subscribe(box, receiver, resource=f"users/{box.account_id}/events").status_code == 201
    assert _subscribe(box, receiver, resource="/me/events").status_code == 201
    assert _subscribe(box, receiver, resource="users/someone-else/events").status_code == 403
    assert _subscribe(box, receiver, changeType="created,moved").status_code == 400
    assert _subscribe(box, receiver, clientState="x" * 129).status_code == 400
    admin.push_settings(graph_max_minutes=30)
    capped = _subscribe(box, receiver, expirationDateTime=_in(31))
    assert capped.json()["error"]["message"] == "Subscription expiration can only be 30 minutes in the future."


def test_changes_in_any_calendar_of_the_mailbox_are_notified_like_the_contract_sample(
    server: Emulator, admin: EmulatorClient, receiver: Receiver
) -> None:
    box = Mailbox(server, "notify@contoso.com")
    other = Mailbox(server, "other@contoso.com")
    sub = _subscribe(box, receiver).json()
    second = admin.create_calendar(box.account_id, name="Second")
    created = box.create(graph_timed("Planning", "2024-05-13T09:00:00", "2024-05-13T10:00:00"), second)
    other.create(graph_timed("Not mine", "2024-05-13T09:00:00", "2024-05-13T10:00:00"))
    admin.wait_push_idle()
    box.admin("PATCH", f"/events/{created['id']}", json={"subject": "Planning (moved)"})
    admin.wait_push_idle()
    assert box.call("DELETE", f"/me/events/{created['id']}").status_code == 204
    admin.wait_push_idle()
    hits = receiver.at("/graph")
    assert [h.json()["value"][0]["changeType"] for h in hits] == ["created", "updated", "deleted"]
    assert all(h.headers["Content-Type"].startswith("application/json") for h in hits)
    note = hits[0].json()
    resource = f"Users/{box.account_id}/Events/{created['id']}"
    assert note == {
        "value": [
            {
                "subscriptionId": sub["id"],
                "subscriptionExpirationDateTime": sub["expirationDateTime"],
                "changeType": "created",
                "resource": resource,
                "resourceData": {
                    "@odata.type": "#Microsoft.Graph.Event",
                    "@odata.id": resource,
                    "@odata.etag": created["@odata.etag"],
                    "id": created["id"],
                },
                "clientState": "s3cr3t",
                "tenantId": note["value"][0]["tenantId"],
            }
        ]
    }
    changes = [d for d in admin.push_deliveries("outlook") if d["kind"] == "change"]
    assert len(changes) == 3 and changes[0]["body"] == note and changes[0]["status"] == 202


def test_change_type_filter_renew_delete_and_foreign_subscriptions(
    server: Emulator, admin: EmulatorClient, receiver: Receiver
) -> None:
    box = Mailbox(server, "renew@contoso.com")
    other = Mailbox(server, "stranger@contoso.com")
    sub = _subscribe(box, receiver, changeType="deleted").json()
    assert other.call("GET", f"/subscriptions/{sub['id']}").status_code == 404
    assert other.call("DELETE", f"/subscriptions/{sub['id']}").status_code == 404
    created = box.create(graph_timed("Quiet", "2024-05-13T09:00:00", "2024-05-13T10:00:00"))
    admin.wait_push_idle()
    assert receiver.at("/graph") == []
    new_expiry = _in(120)
    renewed = box.call("PATCH", f"/subscriptions/{sub['id']}", json={"expirationDateTime": new_expiry})
    assert renewed.status_code == 200 and renewed.json()["expirationDateTime"][:19] == new_expiry[:19]
    too_far = box.call("PATCH", f"/subscriptions/{sub['id']}", json={"expirationDateTime": _in(20000)})
    assert too_far.status_code == 400
    assert box.call("DELETE", f"/subscriptions/{sub['id']}").status_code == 204
    missing = box.call("GET", f"/subscriptions/{sub['id']}")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "ResourceNotFound"
    assert box.call("PATCH", f"/subscriptions/{sub['id']}", json={"expirationDateTime": _in(5)}).status_code == 404
    box.call("DELETE", f"/me/events/{created['id']}")
    admin.wait_push_idle()
    assert receiver.at("/graph") == []


def test_lifecycle_notifications_and_their_effects(server: Emulator, admin: EmulatorClient, receiver: Receiver) -> None:
    box = Mailbox(server, "life@contoso.com")
    sub = _subscribe(box, receiver).json()
    assert admin.push_lifecycle(sub["id"], "reauthorizationRequired") is True
    admin.wait_push_idle()
    [state] = admin.push_state()["subscriptions"]
    assert state["pending_reauth"] is True
    assert box.call("POST", f"/subscriptions/{sub['id']}/reauthorize").status_code == 200
    assert admin.push_state()["subscriptions"][0]["pending_reauth"] is False
    admin.push_lifecycle(sub["id"], "reauthorizationRequired")
    box.call("PATCH", f"/subscriptions/{sub['id']}", json={"expirationDateTime": _in(90)})
    assert admin.push_state()["subscriptions"][0]["pending_reauth"] is False
    admin.push_lifecycle(sub["id"], "missed")
    admin.push_lifecycle(sub["id"], "subscriptionRemoved")
    admin.wait_push_idle()
    assert box.call("GET", f"/subscriptions/{sub['id']}").status_code == 404
    assert admin.push_state()["subscriptions"][0]["deleted"] is True
    events = [h.json()["value"][0] for h in receiver.at("/life")]
    assert [e["lifecycleEvent"] for e in events] == [
        "reauthorizationRequired",
        "reauthorizationRequired",
        "missed",
        "subscriptionRemoved",
    ]
    assert set(events[0]) == {
        "subscriptionId",
        "subscriptionExpirationDateTime",
        "tenantId",
        "clientState",
        "lifecycleEvent",
    }
    assert events[0]["subscriptionId"] == sub["id"] and events[0]["clientState"] == "s3cr3t"
    with pytest.raises(requests.HTTPError):
        admin.push_lifecycle(sub["id"], "bogus")


def test_graph_paused_expired_and_retried_notifications(
    server: Emulator, admin: EmulatorClient, receiver: Receiver
) -> None:
    box = Mailbox(server, "pause@contoso.com")
    sub = _subscribe(box, receiver).json()
    admin.push_settings(paused=True, push_retry_delay=0.01)
    box.create(graph_timed("Lost", "2024-05-13T09:00:00", "2024-05-13T10:00:00"))
    admin.wait_push_idle()
    assert receiver.at("/graph") == []
    admin.push_settings(paused=False)
    receiver.statuses.append(400)
    box.create(graph_timed("Retried", "2024-05-14T09:00:00", "2024-05-14T10:00:00"))
    admin.wait_push_idle()
    changes = [(d["status"], d["attempt"]) for d in admin.push_deliveries("outlook") if d["kind"] == "change"]
    assert changes == [(400, 1), (202, 2)]  # Graph retries any non-2xx answer
    admin.push_expire(sub["id"])
    box.create(graph_timed("Too late", "2024-05-15T09:00:00", "2024-05-15T10:00:00"))
    admin.wait_push_idle()
    assert len(receiver.at("/graph")) == 2
    assert box.call("GET", "/subscriptions").json()["value"] == []

"""HTTP routes of push notifications: Google events.watch / channels.stop, Graph /subscriptions.

Follows Google's push guide and Graph's webhook documentation (PROVIDER_RULES.md 35-37).

The server calls ``handle`` without holding its lock (the Graph validation handshake is an outgoing HTTP
request that may take seconds); calendar look-ups take the lock briefly.
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus, unquote, urlsplit

from autosync.emulator import google_errors as gerr
from autosync.emulator.core import Account, Request, Response
from autosync.emulator.graph_errors import GraphError, error_response
from autosync.emulator.graph_routes import Api
from autosync.emulator.watch import Subscription
from autosync.emulator.watch_delivery import Answer, new_session, post

if TYPE_CHECKING:
    from autosync.emulator.server import Emulator

GOOGLE_ENDPOINTS = frozenset({"google.events.watch", "google.channels.stop"})
GRAPH_ENDPOINTS = frozenset(
    {
        "graph.subscriptions.create",
        "graph.subscriptions.list",
        "graph.subscriptions.get",
        "graph.subscriptions.update",
        "graph.subscriptions.delete",
        "graph.subscriptions.reauthorize",
    }
)
ENDPOINTS = GOOGLE_ENDPOINTS | GRAPH_ENDPOINTS

_WATCH_RE = re.compile(r"^/calendars/([^/]+)/events/watch/?$")
_CHANNEL_ID_RE = re.compile(r"^[A-Za-z0-9\-_+/=]{1,64}$")
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_CHANGE_TYPES = ("created", "updated", "deleted")
_EVENTS_RESOURCE_RE = re.compile(r"^/?(?:me|users/([^/]+))/events$", re.IGNORECASE)
_VALIDATION_FAILED = (
    "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request."
)


def url_allowed(url: str) -> bool:
    """https, or http on a loopback host (the emulator's tests have no TLS)."""
    try:
        split = urlsplit(url)
        host = split.hostname
    except ValueError:
        return False
    if split.scheme == "https" and host:
        return True
    return split.scheme == "http" and host in _LOOPBACK


def handle(emu: Emulator, endpoint: str, req: Request) -> Response:
    """Serve one authenticated push request (``endpoint`` in ENDPOINTS)."""
    assert req.account is not None
    if endpoint in GOOGLE_ENDPOINTS:
        try:
            if endpoint == "google.events.watch":
                return _watch(emu, req, req.account)
            return _stop(emu, req, req.account)
        except gerr.GoogleError as exc:
            return exc.response()
    try:
        return _graph(emu, endpoint, req, req.account)
    except GraphError as exc:
        return error_response(exc, req.headers)


# --- Google ------------------------------------------------------------------------------------


def _required(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise gerr.GoogleError(400, "required", f"Required parameter: {name}", location_type="parameter", location=name)
    return value


def _watch(emu: Emulator, req: Request, account: Account) -> Response:
    match = _WATCH_RE.match(req.path)
    assert match is not None
    with emu.lock:
        cal = emu.google.calendar(account, unquote(match.group(1)))
    body = gerr.json_body(req)
    channel_id = _required(body, "id")
    if not _CHANNEL_ID_RE.match(channel_id):
        raise gerr.invalid_param("id", f"Invalid channel id {channel_id!r}: at most 64 of [A-Za-z0-9-_+/=].")
    if body.get("type") not in ("web_hook", "webhook"):
        raise gerr.invalid_param("type", f"Invalid value for channel type: {body.get('type')!r}")
    address = _required(body, "address")
    if not url_allowed(address):
        raise gerr.GoogleError(400, "push.webhookUrlNotHttps", f"WebHook callback must be HTTPS: {address}")
    token = body.get("token")
    if token is not None and (not isinstance(token, str) or len(token) > 256):
        raise gerr.invalid_param("token", "The channel token must be a string of at most 256 characters.")
    resource_uri = f"{req.base_url}/google/calendar/v3/calendars/{match.group(1)}/events?alt=json"
    channel = emu.push.watch(account.id, cal.id, resource_uri, body, _requested_expiration(body))
    out: dict[str, Any] = {
        "kind": "api#channel",
        "id": channel.id,
        "resourceId": channel.resource_id,
        "resourceUri": channel.resource_uri,
    }
    if channel.token is not None:
        out["token"] = channel.token
    out["expiration"] = str(channel.expiration)
    return Response(200, out)


def _requested_expiration(body: dict[str, Any]) -> int | None:
    """The requested expiration in Unix ms (``expiration`` and/or legacy ``params.ttl``; the earlier wins)."""
    candidates: list[int] = []
    raw = body.get("expiration")
    if raw is not None:
        if isinstance(raw, bool) or not isinstance(raw, int | str) or not str(raw).strip().isdigit():
            raise gerr.invalid_param("expiration", f"Invalid value for expiration: {raw!r}")
        candidates.append(int(raw))
    ttl = (body.get("params") or {}).get("ttl") if isinstance(body.get("params"), dict) else None
    if ttl is not None:
        if not str(ttl).strip().isdigit():
            raise gerr.invalid_param("params.ttl", f"Invalid value for ttl: {ttl!r}")
        candidates.append(int(time.time() * 1000) + int(ttl) * 1000)
    if not candidates:
        return None
    requested = min(candidates)
    if requested <= int(time.time() * 1000):
        raise gerr.invalid_param("expiration", "The channel expiration must be in the future.")
    return requested


def _stop(emu: Emulator, req: Request, account: Account) -> Response:
    body = gerr.json_body(req)
    emu.push.stop_channel(account.id, _required(body, "id"), _required(body, "resourceId"))
    return Response(204, b"")


# --- Graph -------------------------------------------------------------------------------------


def _graph(emu: Emulator, endpoint: str, req: Request, account: Account) -> Response:
    hub = emu.push
    segs = [unquote(s) for s in req.path.strip("/").split("/")]
    if endpoint == "graph.subscriptions.create":
        return _create(emu, req, account)
    if endpoint == "graph.subscriptions.list":
        subs = hub.account_subscriptions(account.id)
        return Response(200, {"@odata.context": _context(req, ""), "value": [s.to_json() for s in subs]})
    sub_id = segs[1]
    if endpoint == "graph.subscriptions.get":
        return _one(req, hub.subscription(account.id, sub_id))
    if endpoint == "graph.subscriptions.delete":
        hub.delete_subscription(account.id, sub_id)
        return Response(204)
    if endpoint == "graph.subscriptions.reauthorize":
        hub.reauthorize(account.id, sub_id)
        return Response(200, b"")
    body = _graph_body(req)
    unknown = set(body) - {"expirationDateTime"}
    if unknown or "expirationDateTime" not in body:
        raise GraphError(400, "InvalidRequest", "Only expirationDateTime can be updated on a subscription.")
    hub.subscription(account.id, sub_id)  # 404 before 400
    return _one(req, hub.renew(account.id, sub_id, _expiration(emu, body.get("expirationDateTime"))))


def _context(req: Request, tail: str) -> str:
    return f"{req.base_url}/graph/v1.0/$metadata#subscriptions{tail}"


def _one(req: Request, sub: Subscription, status: int = 200) -> Response:
    return Response(status, {"@odata.context": _context(req, "/$entity"), **sub.to_json()})


def _graph_body(req: Request) -> dict[str, Any]:
    body = Api.body(req)  # Graph's own 400 when it does not parse
    if not isinstance(body, dict):
        raise GraphError(400, "BadRequest", "The request body must be a JSON object.")
    return body


def _expiration(emu: Emulator, raw: Any) -> datetime:
    if not isinstance(raw, str) or not raw:
        raise GraphError(400, "InvalidRequest", "expirationDateTime is a required property for subscription creation.")
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError as exc:
        raise GraphError(400, "InvalidRequest", f"Cannot convert the literal '{raw}' to a DateTimeOffset.") from exc
    value = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    if value <= datetime.now(UTC):
        raise GraphError(400, "InvalidRequest", "Subscription expiration must be in the future.")
    minutes = emu.push.settings.graph_max_minutes
    if value > emu.push.max_expiration():
        raise GraphError(
            400, "InvalidRequest", f"Subscription expiration can only be {minutes:g} minutes in the future."
        )
    return value


def _create(emu: Emulator, req: Request, account: Account) -> Response:
    body = _graph_body(req)
    change_types = [c.strip() for c in str(body.get("changeType") or "").split(",") if c.strip()]
    if not change_types or any(c not in _CHANGE_TYPES for c in change_types):
        raise GraphError(400, "InvalidRequest", f"Invalid 'changeType' attribute: '{body.get('changeType')}'.")
    url = _url(body, "notificationUrl")
    lifecycle = _url(body, "lifecycleNotificationUrl") if body.get("lifecycleNotificationUrl") is not None else None
    _check_resource(body.get("resource"), account)
    client_state = body.get("clientState")
    if client_state is not None and (not isinstance(client_state, str) or len(client_state) > 128):
        raise GraphError(400, "InvalidRequest", "clientState must be a string of at most 128 characters.")
    expiration = _expiration(emu, body.get("expirationDateTime"))
    sub_id = emu.push.new_subscription_id()
    for target in (url, lifecycle):
        if target is not None and not _validated(emu, sub_id, target):
            raise GraphError(400, "ValidationError", _VALIDATION_FAILED)
    sub = Subscription(
        sub_id,
        account.id,
        body["resource"],
        change_types,
        url,
        lifecycle,
        client_state,
        expiration,
        emu.clients["outlook"][0],
        str(body.get("latestSupportedTlsVersion") or "v1_2"),
    )
    emu.push.add_subscription(sub)
    return _one(req, sub, 201)


def _url(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not url_allowed(value):
        raise GraphError(400, "InvalidRequest", f"Invalid {name}: '{value}'. The URL must use https.")
    return value


def _check_resource(resource: Any, account: Account) -> None:
    match = _EVENTS_RESOURCE_RE.match(resource) if isinstance(resource, str) else None
    if match is None:
        raise GraphError(
            400,
            "InvalidRequest",
            f"Unsupported resource '{resource}': only me/events and users/{{id}}/events are supported.",
        )
    user = match.group(1)
    if user is not None and unquote(user).lower() not in (account.id.lower(), account.email.lower()):
        raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")


def _validated(emu: Emulator, sub_id: str, url: str) -> bool:
    """The validation handshake: POST ?validationToken=…; the receiver must echo it as text/plain within time."""
    token = f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"
    target = f"{url}{'&' if urlsplit(url).query else '?'}validationToken={quote_plus(token)}"
    headers = {"Content-Type": "text/plain; charset=utf-8", "Content-Length": "0"}
    with new_session() as session:
        answer = post(session, target, headers, b"", emu.push.settings.validation_timeout)
    emu.push.log.record("outlook", sub_id, target, "validation", headers, b"", answer, 1)
    return _echoes(answer, token)


def _echoes(answer: Answer, token: str) -> bool:
    if answer.status != 200 or not answer.content_type.lower().startswith("text/plain"):
        return False
    try:
        return answer.body.decode("utf-8") == token
    except UnicodeDecodeError:
        return False

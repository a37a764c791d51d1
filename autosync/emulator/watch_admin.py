"""Admin routes of push notifications (`/_admin/push/...`): state, delivery log, settings, lifecycle, expiry."""

from __future__ import annotations

from typing import Any

from autosync.emulator.core import Request, Response
from autosync.emulator.watch import PushHub, UnknownTarget


def handle_push_admin(hub: PushHub, req: Request) -> Response:
    """Serve `/push/...` (path after `/_admin`); ValueError/KeyError become 400 in admin.py."""
    try:
        return _route(hub, req)
    except UnknownTarget as exc:
        return Response(404, {"error": str(exc)})


def _route(hub: PushHub, req: Request) -> Response:
    path, method = req.path.rstrip("/"), req.method
    if (method, path) == ("GET", "/push/state"):
        return Response(200, hub.state())
    if (method, path) == ("GET", "/push/deliveries"):
        return Response(200, {"deliveries": hub.log.query(req.param("provider"))})
    if (method, path) == ("DELETE", "/push/deliveries"):
        hub.log.clear()
        return Response(200, {"ok": True})
    if (method, path) == ("GET", "/push/queue"):
        return Response(200, {"pending": hub.dispatcher.pending()})
    if path == "/push/settings" and method in ("GET", "POST"):
        return Response(200, hub.update_settings(_body(req) if method == "POST" else {}))
    if (method, path) == ("POST", "/push/lifecycle"):
        spec = _body(req)
        return Response(200, {"queued": hub.lifecycle(str(spec["subscription_id"]), str(spec["event"]))})
    if (method, path) == ("POST", "/push/expire"):
        hub.expire(str(_body(req)["id"]))
        return Response(200, {"ok": True})
    return Response(404, {"error": f"no admin route {method} {path}"})


def _body(req: Request) -> dict[str, Any]:
    body = req.json() or {}
    if not isinstance(body, dict):
        raise ValueError("a JSON object is required")
    return body

"""The emulator's admin API (`/_admin/...`): accounts, seeding, faults, quotas, latency, request log, person-edits,
push."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from autosync.emulator import google
from autosync.emulator.core import Request, Response
from autosync.emulator.watch_admin import handle_push_admin

if TYPE_CHECKING:
    from autosync.emulator.server import Emulator

_ACCOUNT_ACTION_RE = re.compile(r"^/accounts/([^/]+)/(calendars|revoke|expire-access-tokens|refresh-token)$")
_INVALIDATE_RE = re.compile(r"^/calendars/([^/]+)/invalidate-cursors$")


def handle_admin(emu: Emulator, req: Request) -> Response:
    """Serve one admin request; `req.path` is the part after `/_admin`."""
    try:
        return _route(emu, req)
    except (ValueError, KeyError, TypeError) as exc:
        return Response(400, {"error": f"{type(exc).__name__}: {exc}"})


def _route(emu: Emulator, req: Request) -> Response:
    path, method = req.path.rstrip("/") or "/", req.method
    if path.startswith("/google/") and path != "/google/settings":
        with emu.lock:
            return google.handle_admin(emu.google, _sub(req, "/google"))
    if path.startswith("/push/"):
        return handle_push_admin(emu.push, req)
    if path.startswith("/outlook"):
        if emu.graph is None:
            return Response(404, {"error": "Graph module not available"})
        with emu.lock:
            return emu.graph.handle_admin(_sub(req, "/outlook"))
    simple: dict[tuple[str, str], Callable[[Emulator, Request], Response]] = {
        ("POST", "/reset"): lambda e, r: _done(e.reset),
        ("GET", "/state"): lambda e, r: Response(200, e.dump()),
        ("POST", "/seed"): _seed,
        ("POST", "/accounts"): _create_account,
        ("GET", "/requests"): _requests,
        ("DELETE", "/requests"): lambda e, r: _done(e.log.clear),
        ("POST", "/faults"): lambda e, r: Response(200, asdict(e.faults.add(r.json() or {}))),
        ("GET", "/faults"): lambda e, r: Response(200, {"faults": e.faults.list()}),
        ("DELETE", "/faults"): lambda e, r: _done(e.faults.clear),
        ("POST", "/quotas"): lambda e, r: Response(200, asdict(e.quotas.set(r.json() or {}))),
        ("GET", "/quotas"): lambda e, r: Response(200, e.quotas.get()),
        ("POST", "/latency"): lambda e, r: Response(200, asdict(e.latency.set(r.json() or {}))),
        ("GET", "/latency"): lambda e, r: Response(200, {"rules": e.latency.list()}),
        ("DELETE", "/latency"): lambda e, r: _done(e.latency.clear),
        ("POST", "/google/settings"): _google_settings,
        ("GET", "/google/settings"): lambda e, r: Response(200, asdict(e.google.settings)),
    }
    handler = simple.get((method, path))
    if handler is not None:
        return handler(emu, req)
    match = _ACCOUNT_ACTION_RE.match(path)
    if match and method == "POST":
        return _account_action(emu, unquote(match.group(1)), match.group(2), req)
    match = _INVALIDATE_RE.match(path)
    if match and method == "POST":
        return _invalidate(emu, unquote(match.group(1)))
    return Response(404, {"error": f"no admin route {method} {path}"})


def _sub(req: Request, prefix: str) -> Request:
    return Request(req.method, req.path[len(prefix) :] or "/", req.raw_query, req.headers, req.body, req.base_url)


def _done(action: Callable[[], None] | None = None) -> Response:
    if action is not None:
        action()
    return Response(200, {"ok": True})


def _seed(emu: Emulator, req: Request) -> Response:
    emu.load_seed(req.json() or {})
    return _done()


def _create_account(emu: Emulator, req: Request) -> Response:
    spec = req.json() or {}
    account_id, refresh_token, calendar_id = emu.create_account(
        spec["provider"], spec["email"], spec.get("account_id"), time_zone=spec.get("time_zone", "UTC")
    )
    return Response(200, {"account_id": account_id, "refresh_token": refresh_token, "calendar_id": calendar_id})


def _account_action(emu: Emulator, account_id: str, action: str, req: Request) -> Response:
    if account_id not in emu.oauth.accounts:
        return Response(404, {"error": f"no account {account_id}"})
    if action == "calendars":
        spec = req.json() or {}
        cal_id = emu.create_calendar(
            account_id, spec.get("calendar_id"), spec.get("name"), time_zone=spec.get("time_zone", "UTC")
        )
        return Response(200, {"calendar_id": cal_id})
    if action == "revoke":
        emu.oauth.revoke(account_id)
        return _done()
    if action == "expire-access-tokens":
        emu.oauth.expire_access_tokens(account_id)
        return _done()
    return Response(200, {"refresh_token": emu.oauth.new_refresh_token(account_id)})


def _invalidate(emu: Emulator, calendar_id: str) -> Response:
    with emu.lock:
        found = emu.google.invalidate_cursors(calendar_id)
        if emu.graph is not None:
            emu.graph.invalidate_cursors(calendar_id)
            found = True  # Graph ignores calendars it does not know
    if not found:
        return Response(404, {"error": f"no calendar {calendar_id}"})
    return _done()


def _requests(emu: Emulator, req: Request) -> Response:
    return Response(200, emu.log.query(req.param("account"), req.param("provider"), req.param("endpoint")))


def _google_settings(emu: Emulator, req: Request) -> Response:
    spec: dict[str, Any] = req.json() or {}
    settings = emu.google.settings
    for key, value in spec.items():
        if not hasattr(settings, key):
            raise ValueError(f"unknown setting {key}")
        setattr(settings, key, value)
    return Response(200, asdict(settings))

"""Google Calendar v3 HTTP routes of the emulator (`/google/calendar/v3/...`) and their admin twins."""

from __future__ import annotations

import re
from urllib.parse import unquote

from autosync.emulator import google_errors as err
from autosync.emulator.core import Request, Response
from autosync.emulator.google_list import list_events, list_instances, render
from autosync.emulator.google_params import parse_params
from autosync.emulator.google_state import GCalendar, GoogleState
from autosync.emulator.google_time import zone

_EVENTS_RE = re.compile(r"^/calendars/([^/]+)/events(?:/([^/]+)(/instances)?)?/?$")
_WATCH_RE = re.compile(r"^/calendars/[^/]+/events/watch/?$")


def route_name(method: str, path: str) -> str | None:
    """The request-log endpoint name of an API path (after `/google/calendar/v3`)."""
    if method == "POST" and _WATCH_RE.match(path):
        return "google.events.watch"  # served by watch_routes
    if path.rstrip("/") == "/channels/stop":
        return "google.channels.stop" if method == "POST" else None
    match = _EVENTS_RE.match(path)
    if match is None:
        return None
    if match.group(3):
        return "google.events.instances"
    if match.group(2) is None:
        return {"GET": "google.events.list", "POST": "google.events.insert"}.get(method)
    return {
        "GET": "google.events.get",
        "PATCH": "google.events.patch",
        "PUT": "google.events.update",
        "DELETE": "google.events.delete",
    }.get(method)


def calendar_of(path: str) -> str | None:
    """The calendar id segment of an API path (decoded), if any."""
    match = _EVENTS_RE.match(path)
    return unquote(match.group(1)) if match else None


def handle(state: GoogleState, req: Request) -> Response:
    """Serve one authenticated Calendar API request."""
    try:
        return _dispatch(state, req)
    except err.GoogleError as exc:
        return exc.response()


def _dispatch(state: GoogleState, req: Request) -> Response:
    match = _EVENTS_RE.match(req.path)
    name = route_name(req.method, req.path)
    if match is None or name is None or req.account is None or name == "google.events.watch":
        return err.GoogleError(404, "notFound", "Not Found").response()
    cal = state.calendar(req.account, unquote(match.group(1)))
    event_id = unquote(match.group(2)) if match.group(2) else None
    tz = zone(req.param("timeZone") or cal.time_zone)
    if name == "google.events.list":
        return Response(200, list_events(state, cal, parse_params(req, state, cal)))
    if name == "google.events.instances":
        assert event_id is not None
        return Response(200, list_instances(state, cal, event_id, parse_params(req, state, cal, instances=True)))
    if name == "google.events.get":
        assert event_id is not None
        body = state.get(cal, event_id)
        if req.headers.get("If-None-Match") and req.headers.get("If-None-Match") == body.get("etag"):
            return Response(304, b"")
        return Response(200, render(body, tz))
    if name == "google.events.delete":
        assert event_id is not None
        state.delete(cal, event_id, req.headers.get("If-Match"))
        return Response(204, b"")
    payload = err.json_body(req)
    conference = req.param("conferenceDataVersion", "0") == "1"
    attachments = (req.param("supportsAttachments") or "false").lower() == "true"
    if name == "google.events.insert":
        return Response(200, render(state.insert(cal, payload, conference=conference, attachments=attachments), tz))
    assert event_id is not None
    write = state.patch if name == "google.events.patch" else state.update
    result = write(
        cal,
        event_id,
        payload,
        conference=conference,
        attachments=attachments,
        if_match=req.headers.get("If-Match"),
    )
    return Response(200, render(result, tz))


# --- admin twins: mutate "as a person would in Google" -----------------------------------------

_ADMIN_RE = re.compile(r"^/calendars/([^/]+)/events(?:/([^/]+))?/?$")


def handle_admin(state: GoogleState, req: Request) -> Response:
    """`/_admin/google/calendars/{cal}/events[/{id}]`: same state logic as the API, every flag on."""
    match = _ADMIN_RE.match(req.path)
    if match is None:
        return Response(404, {"error": "no such admin route"})
    try:
        cal = state.calendar_by_id(unquote(match.group(1)))
        event_id = unquote(match.group(2)) if match.group(2) else None
        return _admin(state, cal, event_id, req)
    except err.GoogleError as exc:
        return exc.response()
    except (ValueError, KeyError) as exc:
        return Response(400, {"error": str(exc)})


def _admin(state: GoogleState, cal: GCalendar, event_id: str | None, req: Request) -> Response:
    if event_id is None:
        if req.method == "GET":
            return Response(200, {"items": [dict(s.body) for s in cal.events.values()]})
        if req.method == "POST":
            raw = req.param("raw") == "true"
            return Response(200, dict(state.insert(cal, err.json_body(req), raw=raw)))
        return Response(405, {"error": "method not allowed"})
    if req.method == "GET":
        return Response(200, dict(state.get(cal, event_id)))
    if req.method == "DELETE":
        state.delete(cal, event_id)
        return Response(204, b"")
    if req.method in ("PATCH", "PUT"):
        write = state.patch if req.method == "PATCH" else state.update
        return Response(200, dict(write(cal, event_id, err.json_body(req))))
    return Response(405, {"error": "method not allowed"})

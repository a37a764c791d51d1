"""Google list parameters in the emulator: validation (400/410) and the opaque page/sync tokens."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from autosync.emulator import google_errors as err
from autosync.emulator.core import Request
from autosync.emulator.google_fields import EVENT_TYPES
from autosync.emulator.google_state import GCalendar, GoogleState
from autosync.emulator.google_time import has_offset, parse_rfc3339, zone

SYNC_INCOMPATIBLE = (
    "iCalUID",
    "orderBy",
    "privateExtendedProperty",
    "q",
    "sharedExtendedProperty",
    "timeMin",
    "timeMax",
    "updatedMin",
)
_TOKEN_PREFIX = b"\xfb\xff\xbf"  # base64 "+/+/": real tokens carry + / = and must be percent-encoded


@dataclass
class ListParams:
    """Validated query parameters of a list or instances call."""

    sync_token: dict[str, Any] | None = None
    page_token: dict[str, Any] | None = None
    max_results: int = 250
    show_deleted: bool = False
    single_events: bool = False
    time_min: datetime | None = None
    time_max: datetime | None = None
    updated_min: datetime | None = None
    order_by: str | None = None
    response_tz: str | None = None
    event_types: list[str] = field(default_factory=list)
    ical_uid: str | None = None
    q: str | None = None
    private_props: list[str] = field(default_factory=list)
    shared_props: list[str] = field(default_factory=list)


def encode_token(payload: dict[str, Any]) -> str:
    """An opaque base64 token (always containing '+', '/' and '=')."""
    data = json.dumps(payload, separators=(",", ":")).encode()
    if (len(_TOKEN_PREFIX) + len(data)) % 3 == 0:
        data += b" "
    return base64.b64encode(_TOKEN_PREFIX + data).decode()


def decode_token(text: str | None) -> dict[str, Any] | None:
    """The payload of a token from the decoded query value, or None when it is not one of ours."""
    try:
        raw = base64.b64decode((text or "").encode(), validate=True)
        if not raw.startswith(_TOKEN_PREFIX):
            return None
        payload = json.loads(raw[len(_TOKEN_PREFIX) :])
        return payload if isinstance(payload, dict) else None
    except (ValueError, UnicodeDecodeError):
        return None


def parse_params(req: Request, state: GoogleState, cal: GCalendar, instances: bool = False) -> ListParams:
    """Validate list parameters the way the real API does (400 / 410)."""
    query = req.query
    p = ListParams()
    if not instances and "syncToken" in query:
        for name in SYNC_INCOMPATIBLE:
            if name in query:
                raise err.invalid_param(name, f"Sync token cannot be combined with the '{name}' parameter.")
        p.sync_token = decode_token(req.param("syncToken"))
        _check_sync_token(p.sync_token, state, cal)
    if "pageToken" in query:
        p.page_token = decode_token(req.param("pageToken"))
        if p.page_token is None or p.page_token.get("c") != cal.id or p.page_token.get("e") != state.epoch:
            raise err.invalid_param("pageToken")
    p.max_results = _int_param(req, "maxResults", 250, 1)
    p.show_deleted = _bool_param(req, "showDeleted")
    p.single_events = True if instances else _bool_param(req, "singleEvents")
    p.time_min = _time_param(req, "timeMin")
    p.time_max = _time_param(req, "timeMax")
    if p.time_min and p.time_max and p.time_min >= p.time_max:
        raise err.GoogleError(
            400,
            "timeRangeEmpty",
            "The specified time range is empty.",
            location_type="parameter",
            location="timeMax",
        )
    p.updated_min = _time_param(req, "updatedMin")
    limit = state.settings.updated_min_max_age_days
    if p.updated_min and limit is not None and p.updated_min < datetime.now(UTC) - timedelta(days=limit):
        raise err.updated_min_too_long_ago()
    p.order_by = req.param("orderBy")
    if p.order_by not in (None, "startTime", "updated") or (p.order_by == "startTime" and not p.single_events):
        raise err.invalid_param("orderBy", "The requested ordering is not available for the particular query.")
    p.response_tz = req.param("timeZone")
    if p.response_tz is not None and zone(p.response_tz, "") is UTC and p.response_tz not in ("UTC", "Etc/UTC"):
        raise err.invalid_param("timeZone", "Invalid time zone definition.")
    p.event_types = query.get("eventTypes", [])
    for kind in p.event_types:  # a repeated enum parameter: an unknown value is a 400, as for any enum
        if kind not in EVENT_TYPES:
            raise err.invalid_param("eventTypes", f"Invalid value for eventTypes: {kind!r}")
    p.ical_uid, p.q = req.param("iCalUID"), req.param("q")
    p.private_props = query.get("privateExtendedProperty", [])
    p.shared_props = query.get("sharedExtendedProperty", [])
    return p


def _check_sync_token(token: dict[str, Any] | None, state: GoogleState, cal: GCalendar) -> None:
    valid = (
        token is not None
        and token.get("t") == "s"
        and token.get("c") == cal.id
        and token.get("e") == state.epoch
        and isinstance(token.get("q"), int)
        and token["q"] >= cal.min_seq
    )
    if not valid:
        raise err.full_sync_required(state.settings.sync_410_reason)


def _int_param(req: Request, name: str, default: int, minimum: int) -> int:
    raw = req.param(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise err.invalid_param(name) from exc
    if value < minimum:
        raise err.invalid_param(name)
    return min(value, 2500)


def _bool_param(req: Request, name: str) -> bool:
    raw = (req.param(name) or "false").lower()
    if raw not in ("true", "false"):
        raise err.invalid_param(name)
    return raw == "true"


def _time_param(req: Request, name: str) -> datetime | None:
    raw = req.param(name)
    if raw is None:
        return None
    if not has_offset(raw):
        raise err.bad_request()
    try:
        return parse_rfc3339(raw)
    except ValueError as exc:
        raise err.bad_request() from exc

"""Write validation of the Graph emulator: a POST/PATCH event body turned into stored properties.

Follows Graph's event create and update documentation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from autosync.emulator.graph_body import stored_body
from autosync.emulator.graph_errors import GraphError, bad_request
from autosync.emulator.graph_recurrence import normalize_recurrence
from autosync.emulator.graph_time import NEVER, parse_local, resolve_zone, to_utc, windows_name

ENUMS = {
    "importance": ("low", "normal", "high"),
    "sensitivity": ("normal", "personal", "private", "confidential"),
    "showAs": ("free", "tentative", "busy", "oof", "workingElsewhere", "unknown"),
    "onlineMeetingProvider": ("unknown", "teamsForBusiness", "skypeForBusiness", "skypeForConsumer"),
}
BOOLS = (
    "isReminderOn",
    "isOnlineMeeting",
    "responseRequested",
    "allowNewTimeProposals",
    "hideAttendees",
    "isDraft",
)
PLAIN = (
    "subject",
    "categories",
    "reminderMinutesBeforeStart",
    "organizer",
    "responseStatus",
    "transactionId",
)
TIMES = ("start", "end", "isAllDay", "recurrence")
SHAPED = ("body", "location", "locations", "attendees", "attachments")
# Read-only or server-computed properties: accepted in a body and ignored, as Graph does.
IGNORED = {
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "iCalUId",
    "uid",
    "type",
    "seriesMasterId",
    "webLink",
    "bodyPreview",
    "hasAttachments",
    "isOrganizer",
    "onlineMeeting",
    "onlineMeetingUrl",
    "originalStart",
    "originalStartTimeZone",
    "originalEndTimeZone",
    "occurrenceId",
    "cancelledOccurrences",
    "exceptionOccurrences",
    "instances",
    "calendar",
    "extensions",
    "isCancelled",
    "singleValueExtendedProperties",
    "multiValueExtendedProperties",
}
KNOWN = set(ENUMS) | set(BOOLS) | set(PLAIN) | set(TIMES) | set(SHAPED) | IGNORED
DEFAULTS: dict[str, Any] = {
    "subject": "",
    "categories": [],
    "reminderMinutesBeforeStart": 15,
    "isReminderOn": True,
    "importance": "normal",
    "sensitivity": "normal",
    "showAs": "busy",
    "isOnlineMeeting": False,
    "onlineMeetingProvider": "unknown",
    "responseRequested": True,
    "allowNewTimeProposals": True,
    "hideAttendees": False,
    "isDraft": False,
    "isCancelled": False,
}


@dataclass
class Times:
    """Validated start/end of a write."""

    start: datetime
    end: datetime
    all_day: bool
    start_zone: str
    end_zone: str


def check_keys(body: dict[str, Any]) -> None:
    """400 for a property the event type does not have (catches client typos)."""
    for name in body:
        if not name.startswith("@") and name not in KNOWN:
            raise GraphError(
                400,
                "RequestBodyRead",
                f"The property '{name}' does not exist on type "
                "'microsoft.graph.event'. Make sure to only use property names that are defined "
                "by the type or mark the type as open type.",
            )


def _zone_key(name: str | None) -> str:
    return getattr(resolve_zone(name), "key", "UTC")


def _dtz(value: Any, name: str) -> tuple[datetime, str]:
    if not isinstance(value, dict):
        raise bad_request(f"'{name}' must be a dateTimeTimeZone object.")
    return parse_local(value.get("dateTime")), _zone_key(value.get("timeZone") or "UTC")


def resolve_times(body: dict[str, Any], current: Times | None) -> Times:
    """Validate start/end/isAllDay of a write, completing a partial PATCH from ``current``."""
    if current is None and ("start" not in body or "end" not in body):
        raise bad_request(
            "Your request can't be completed. start and end are required.", "ErrorInvalidRequest"
        )
    all_day = bool(body.get("isAllDay", current.all_day if current else False))
    start_local, start_zone = _dtz(body["start"], "start") if "start" in body else _current(current, "start")
    end_local, end_zone = _dtz(body["end"], "end") if "end" in body else _current(current, "end")
    if all_day:
        if start_local.time() != time(0) or end_local.time() != time(0) or start_zone != end_zone:
            raise bad_request(
                "Your request can't be completed. If isAllDay is true, the start and end must "
                "be midnight in the same time zone.",
                "ErrorInvalidRequest",
            )
        if end_local <= start_local:
            raise bad_request("The end of an all-day event must be after its start.", "ErrorInvalidRequest")
        return Times(start_local, end_local, True, start_zone, end_zone)
    start = to_utc(start_local, resolve_zone(start_zone))
    end = to_utc(end_local, resolve_zone(end_zone))
    if end < start:
        raise bad_request("The end time must not be before the start time.", "ErrorInvalidRequest")
    return Times(start, end, False, start_zone, end_zone)


def _current(current: Times | None, which: str) -> tuple[datetime, str]:
    assert current is not None
    value = current.start if which == "start" else current.end
    zone_key = current.start_zone if which == "start" else current.end_zone
    if current.all_day:
        return value, zone_key
    return value.astimezone(resolve_zone(zone_key)).replace(tzinfo=None), zone_key


def _body(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or str(value.get("contentType") or "html").lower() not in ("html", "text"):
        raise bad_request("body must be {contentType: html|text, content}.")
    return stored_body(value)  # kept as written; graph_body renders it per request


def _location(value: Any) -> dict[str, Any]:
    if value is None:
        return {
            "displayName": "",
            "locationType": "default",
            "uniqueIdType": "unknown",
            "address": {},
            "coordinates": {},
        }
    if not isinstance(value, dict):
        raise bad_request("location must be an object.")
    name = str(value.get("displayName") or "")
    out: dict[str, Any] = {"displayName": name, "locationType": value.get("locationType") or "default"}
    if value.get("uniqueId") or name:
        out["uniqueId"] = value.get("uniqueId") or name
    out["uniqueIdType"] = value.get("uniqueIdType") or ("private" if name else "unknown")
    for extra in ("address", "coordinates", "locationUri", "locationEmailAddress"):
        if extra in value:
            out[extra] = value[extra]
    return out


def _locations(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise bad_request("locations must be an array.")
    out = []
    for item in value:
        loc = _location(item)
        if not (isinstance(item, dict) and item.get("uniqueId")):
            loc.pop("uniqueId", None)
            loc["uniqueIdType"] = (
                item.get("uniqueIdType") or "unknown" if isinstance(item, dict) else "unknown"
            )
        out.append(loc)
    return out


def _attendees(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise bad_request("attendees must be an array.")
    out = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("emailAddress"), dict):
            raise bad_request("Each attendee needs an emailAddress.")
        kind = item.get("type") or "required"
        if kind not in ("required", "optional", "resource"):
            raise bad_request(f"Unsupported attendee type '{kind}'.")
        status = item.get("status") or {}
        email = item["emailAddress"]
        out.append(
            {
                "type": kind,
                "status": {"response": status.get("response") or "none", "time": status.get("time") or NEVER},
                "emailAddress": {
                    "name": email.get("name") or email.get("address", ""),
                    "address": email.get("address", ""),
                },
            }
        )
    return out


def _attachments(value: Any, now: datetime) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise bad_request("attachments must be an array.")
    return [
        {
            "name": str(a.get("name") or "file"),
            "contentType": a.get("contentType") or "application/octet-stream",
            "contentBytes": a.get("contentBytes") or "",
            "isInline": bool(a.get("isInline", False)),
            "lastModifiedDateTime": now.isoformat(),
        }
        for a in value
        if isinstance(a, dict)
    ]


def _check_value(name: str, value: Any) -> None:
    if name in ENUMS and value not in ENUMS[name]:
        raise bad_request(f"Unsupported value for '{name}': {value!r}.")
    if name in BOOLS and not isinstance(value, bool):
        raise bad_request(f"'{name}' must be a boolean.")
    if name == "reminderMinutesBeforeStart" and (not isinstance(value, int) or isinstance(value, bool)):
        raise bad_request("'reminderMinutesBeforeStart' must be an integer.")
    if name == "categories" and (not isinstance(value, list) or not all(isinstance(c, str) for c in value)):
        raise bad_request("'categories' must be an array of strings.")


def shape_props(body: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The plain (non-time) properties a body sets, normalized; collections replace whole."""
    out: dict[str, Any] = {}
    for name, value in body.items():
        if name in ENUMS or name in BOOLS or name in PLAIN:
            _check_value(name, value)
            out[name] = value
    if "body" in body:
        out["body"] = _body(body["body"])
    if "location" in body:
        out["location"] = _location(body["location"])
        if "locations" not in body:  # writing location replaces locations (Graph event resource)
            name = out["location"]["displayName"]
            out["locations"] = (
                [{"displayName": name, "locationType": "default", "uniqueIdType": "unknown"}] if name else []
            )
    if "locations" in body:
        out["locations"] = _locations(body["locations"])
    if "attendees" in body:
        out["attendees"] = _attendees(body["attendees"])
    if "attachments" in body:
        out["attachments"] = _attachments(body["attachments"], now)
    return out


def new_props(body: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Full property set of a created event: defaults overlaid with the body's values."""
    props = dict(DEFAULTS)
    props.update(
        {
            "body": {"contentType": "html", "content": ""},
            "location": _location(None),
            "locations": [],
            "attendees": [],
        }
    )
    props.update(shape_props(body, now))
    if props.get("isOnlineMeeting") and "onlineMeetingProvider" not in body:
        props["onlineMeetingProvider"] = "teamsForBusiness"
    return props


def recurrence_of(body: dict[str, Any], times: Times) -> dict[str, Any] | None:
    """Validated recurrence of a body (default recurrence zone = the start zone)."""
    if body.get("recurrence") is None:
        return None
    return normalize_recurrence(body["recurrence"], windows_name(resolve_zone(times.start_zone)))


def series_duration(times: Times) -> timedelta:
    """Length of one instance."""
    return times.end - times.start

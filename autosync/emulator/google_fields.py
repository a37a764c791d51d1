"""Google event field rules of the emulator: time validation, conference data, patch merging, ids."""

from __future__ import annotations

import base64
import copy
import secrets
from datetime import datetime
from typing import Any

from autosync.emulator import google_errors as err
from autosync.emulator.google_time import build_ruleset, edt_value, is_all_day, parse_rfc3339

READ_ONLY = (
    "kind",
    "etag",
    "id",
    "created",
    "updated",
    "htmlLink",
    "creator",
    "recurringEventId",
    "originalStartTime",
    "iCalUID",
    "hangoutLink",
)
# Event types (discovery document, `Event.eventType` and the `eventTypes` list parameter). The type
# is fixed at creation. Google creates none of type fromGmail ("This type of event cannot be created"),
# and Gmail's events accept changes to a few fields only: reminders, colorId, visibility, status and
# extendedProperties (Google Workspace Updates blog, May 2024, on the fromGmail event type; quoted in
# phw198/OutlookGoogleCalendarSync#1988). The three Workspace status types need their properties
# object on insert (developers.google.com/workspace/calendar/api/guides/calendar-status). A refusal is
# a 400 with reason eventTypeRestriction, the reason clients in the wild branch on.
EVENT_TYPES = ("birthday", "default", "focusTime", "fromGmail", "outOfOffice", "workingLocation")
FROM_GMAIL_WRITABLE = frozenset({"reminders", "colorId", "visibility", "status", "extendedProperties"})
TYPE_PROPERTIES = {"focusTime": "focusTimeProperties", "outOfOffice": "outOfOfficeProperties",
                   "workingLocation": "workingLocationProperties"}
_MEET_ICON = (
    "https://fonts.gstatic.com/s/i/productlogos/meet_2020q4/v6/web-512dp/logo_meet_2020q4_color_2x_web_512dp.png"
)


def validate_times(event: dict[str, Any], strict: bool) -> None:
    """Validate start/end/recurrence (400s as Google answers); fills `end` for endTimeUnspecified."""
    if not isinstance(event.get("start"), dict):
        raise err.GoogleError(400, "required", "Missing start time.")
    if not isinstance(event.get("end"), dict):
        if not event.get("endTimeUnspecified"):
            raise err.GoogleError(400, "required", "Missing end time.")
        event["end"] = dict(event["start"])
    try:
        for key in ("start", "end"):
            edt = event[key]
            timed = not is_all_day(edt) and bool(edt.get("dateTime"))
            naive = timed and parse_rfc3339(edt["dateTime"]).tzinfo is None
            if naive and not edt.get("timeZone"):
                raise err.GoogleError(400, "required", f"Missing time zone definition for {key} time.")
        start, end = edt_value(event["start"]), edt_value(event["end"])
    except (ValueError, KeyError, TypeError) as exc:
        raise err.GoogleError(400, "invalid", f"Invalid start/end time: {exc}") from exc
    if type(start) is not type(end):
        raise err.GoogleError(400, "invalid", "Start and end times must either both be date or both be dateTime.")
    if end < start:  # type: ignore[operator]
        raise err.GoogleError(400, "timeRangeEmpty", "The specified time range is empty.")
    if event.get("recurrence"):
        if strict and isinstance(start, datetime) and not event["start"].get("timeZone"):
            raise err.GoogleError(400, "required", "Missing time zone definition for start time.")
        try:
            anchor = start if isinstance(start, datetime) else datetime.combine(start, datetime.min.time())
            build_ruleset(list(event["recurrence"]), anchor)
        except (ValueError, TypeError) as exc:
            raise err.GoogleError(400, "invalid", "Invalid recurrence rule.") from exc


def complete_conference(data: dict[str, Any]) -> None:
    """Answer a Meet createRequest the way Google does once the conference exists."""
    request = data.get("createRequest")
    if not isinstance(request, dict) or data.get("conferenceId"):
        return
    letters = "abcdefghijklmnopqrstuvwxyz"
    code = "-".join("".join(secrets.choice(letters) for _ in range(n)) for n in (3, 4, 3))
    data["conferenceId"] = code
    data["conferenceSolution"] = {
        "key": {"type": "hangoutsMeet"},
        "name": "Google Meet",
        "iconUri": _MEET_ICON,
    }
    data["entryPoints"] = [
        {
            "entryPointType": "video",
            "uri": f"https://meet.google.com/{code}",
            "label": f"meet.google.com/{code}",
        },
        {"entryPointType": "more", "uri": f"https://tel.meet/{code}?pin=1234567890", "pin": "1234567890"},
    ]
    request["status"] = {"statusCode": "success"}
    request.setdefault("conferenceSolutionKey", {"type": "hangoutsMeet"})


def set_hangout_link(event: dict[str, Any]) -> None:
    """Set `hangoutLink` from Meet conference data (remove it otherwise)."""
    data = event.get("conferenceData")
    key = ((data or {}).get("conferenceSolution") or {}).get("key", {}).get("type") if isinstance(data, dict) else None
    video = [e for e in (data or {}).get("entryPoints", []) if e.get("entryPointType") == "video"] if data else []
    if key == "hangoutsMeet" and video:
        event["hangoutLink"] = video[0].get("uri")
    else:
        event.pop("hangoutLink", None)


def writable_fields(body: dict[str, Any], conference: bool, attachments: bool) -> dict[str, Any]:
    """The client-writable part of a body (conference data/attachments only with their flags)."""
    out = {k: v for k, v in (body or {}).items() if k not in READ_ONLY}
    if not conference:
        out.pop("conferenceData", None)
    if not attachments:
        out.pop("attachments", None)
    out.pop("eventType", None)  # immutable after creation
    return out


def merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Patch merge: nested objects merge, arrays and scalars replace, null removes."""
    out = dict(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def without(body: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """A copy of a body without some keys."""
    return {k: v for k, v in body.items() if k not in keys}


def html_link(event_id: str, calendar_id: str) -> str:
    """The read-only htmlLink of an event."""
    eid = base64.urlsafe_b64encode(f"{event_id} {calendar_id}".encode()).decode().rstrip("=")
    return f"https://www.google.com/calendar/event?eid={eid}"


def new_id() -> str:
    """A random base32hex event id like Google's."""
    alphabet = "abcdefghijklmnopqrstuv0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(26))


def check_insert_type(body: dict[str, Any]) -> None:
    """Refuse an insert Google refuses for its event type."""
    kind = body.get("eventType", "default")
    if kind not in EVENT_TYPES:
        raise err.invalid_param("eventType", f"Invalid event type: {kind!r}")
    if kind == "fromGmail":
        raise err.event_type_restriction("Events of type fromGmail cannot be created.")
    needed = TYPE_PROPERTIES.get(kind)
    if needed and not isinstance(body.get(needed), dict):
        raise err.GoogleError(400, "required", f"Missing {needed} for an event of type {kind}.")


def check_write_type(old: dict[str, Any], new: dict[str, Any]) -> None:
    """Refuse a patch/update that changes fields Google keeps fixed on an event from Gmail."""
    if old.get("eventType") != "fromGmail":
        return
    ignore = set(READ_ONLY) | FROM_GMAIL_WRITABLE | {"eventType", "sequence"}
    changed = sorted(k for k in set(old) | set(new) if k not in ignore and old.get(k) != new.get(k))
    if changed:
        raise err.event_type_restriction(
            f"Events of type fromGmail allow changes to {', '.join(sorted(FROM_GMAIL_WRITABLE))} only; "
            f"not to {', '.join(changed)}."
        )

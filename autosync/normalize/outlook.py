"""Microsoft Graph event JSON -> model.Event (reading); writing lives in outlook_write, re-exported here.

Reference: https://learn.microsoft.com/graph/api/resources/event and
https://learn.microsoft.com/graph/api/event-delta
(offset-less dateTimes, floating all-day events, Windows zone names, bare occurrences, @removed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time
from typing import Any

from autosync.errors import NormalizeError
from autosync.model import (
    Attachment,
    Attendee,
    Conference,
    Event,
    EventStatus,
    Moment,
    Organizer,
    Reminder,
    Skipped,
)
from autosync.normalize.bodytext import description_of
from autosync.normalize.common import (
    ONE_DAY,
    as_dict,
    as_list,
    check_order,
    compact_json,
    item_id,
    parse_date,
    parse_datetime,
    parse_utc,
    text,
)
from autosync.normalize.outlook_write import graph_body
from autosync.normalize.recurrence import graph_to_rrule
from autosync.normalize.timezones import iana_name, zone

__all__ = ["event_from_graph", "graph_body", "is_occurrence", "occurrence_refs", "page_from_graph"]

RESPONSES = {
    "accepted": "accepted",
    "tentativelyAccepted": "tentative",
    "declined": "declined",
    "none": "needsAction",
    "notResponded": "needsAction",
    "organizer": "accepted",
}
# Event field -> Graph keys that carry it; when none is in an occurrence/exception (partial
# $select, bare delta occurrence) and its master is known, the master's value is used.
INHERITED: dict[str, tuple[str, ...]] = {
    "summary": ("subject",),
    "description": ("body",),
    "location": ("location", "locations"),
    "organizer": ("organizer",),
    "attendees": ("attendees",),
    "reminders": ("isReminderOn", "reminderMinutesBeforeStart"),
    "conference": ("isOnlineMeeting",),
    "attachments": ("attachments",),
    "status": ("isCancelled", "showAs"),
}
# The JSON type of every Graph event property read here (null or absent is always allowed: Graph sends
# null for unset properties, and a partial item may lack any of them). Anything else is not an event
# Graph would send, and storing it would mean guessing (https://learn.microsoft.com/graph/api/resources/event).
JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "subject": str, "body": dict, "isAllDay": bool, "isCancelled": bool, "showAs": str, "type": str,
    "seriesMasterId": str, "originalStart": str, "originalStartTimeZone": str, "originalEndTimeZone": str,
    "location": dict, "locations": list, "organizer": dict, "attendees": list, "isReminderOn": bool,
    "reminderMinutesBeforeStart": int, "isOnlineMeeting": bool, "onlineMeetingProvider": str,
    "onlineMeeting": dict, "onlineMeetingUrl": str, "webLink": str, "attachments": list,
    "lastModifiedDateTime": str, "@odata.etag": str, "changeKey": str, "recurrence": dict,
    "cancelledOccurrences": list, "start": dict, "end": dict,
}
INT32 = range(-(2**31), 2**31)  # Edm.Int32, e.g. reminderMinutesBeforeStart


def event_from_graph(item: dict[str, Any], *, master: Event | None = None) -> Event:
    """Normalize one Graph event; fields an occurrence/exception lacks come from ``master`` if given.

    Series masters get RRULE/EXDATE lines and both ``remove_*`` flags (see _series). An ``@removed``
    item becomes a cancelled tombstone. Zones Graph names but we cannot map (``tzone://Microsoft/
    Custom``) fall back to the event's ``timeZone``, then UTC — the times stay right, the zone name
    is lost.
    """
    ext_id = item_id(item)
    if "@removed" in item:
        return Event(ext_id=ext_id, status="cancelled", raw=item)
    _check_types(item, ext_id)
    all_day, start, end, start_tz, end_tz = _times(item, ext_id)
    event = Event(
        ext_id=ext_id,
        status=_status(item),
        summary=text(item.get("subject")),
        description=description_of(item.get("body")),
        location=_location(item),
        all_day=all_day,
        start=start,
        end=end,
        start_tz=start_tz,
        end_tz=end_tz,
        recurring_event_id=text(item.get("seriesMasterId")) or None,
        original_start=_original_start(item, ext_id, all_day, start, master),
        organizer=_organizer(item.get("organizer")),
        attendees=tuple(_attendee(a) for a in as_list(item.get("attendees")) if isinstance(a, dict)),
        reminders=_reminders(item),
        conference=_conference(item),
        html_link=text(item.get("webLink")),
        attachments=tuple(_attachment(a) for a in as_list(item.get("attachments")) if isinstance(a, dict)),
        updated=parse_utc(item.get("lastModifiedDateTime")),
        etag=_etag(item),
        raw=item,
    )
    if item.get("type") == "seriesMaster" or as_dict(item.get("recurrence")):
        event = _series(item, event)
    if master is not None and event.recurring_event_id == master.ext_id:
        missing = [f for f, keys in INHERITED.items() if not any(k in item for k in keys)]
        event = dataclasses.replace(event, **{f: getattr(master, f) for f in missing})
    return event


def page_from_graph(
    items: Sequence[Any], *, masters: Mapping[str, Event] | None = None
) -> tuple[list[Event], list[Skipped], list[str]]:
    """(events, skipped, removed ids) for one page.

    Plain occurrences (``type: occurrence``, bare or not) are in neither list: they derive from
    their master (see occurrence_refs). Exceptions are hydrated from a master on the same page or
    in ``masters``.
    """
    known: dict[str, Event] = dict(masters or {})
    results: dict[int, Event | Skipped] = {}
    ordered = sorted(enumerate(items), key=lambda pair: not _is_master(pair[1]))  # masters first
    for index, item in ordered:
        if (isinstance(item, dict) and "@removed" in item) or is_occurrence(item):
            continue
        try:
            master = known.get(text(item.get("seriesMasterId"))) if isinstance(item, dict) else None
            event = event_from_graph(item, master=master)
        except NormalizeError as exc:
            results[index] = Skipped(exc.ext_id or _raw_id(item), exc.reason)
            continue
        except (TypeError, ValueError, KeyError, AttributeError, ArithmeticError, RecursionError) as exc:
            results[index] = Skipped(_raw_id(item), f"unexpected {type(exc).__name__}: {exc}")
            continue
        results[index] = event
        if _is_master(item):
            known[event.ext_id] = event
    in_order = [results[i] for i in sorted(results)]
    removed_ids = [text(i.get("id")) for i in items if isinstance(i, dict) and "@removed" in i]
    events = [r for r in in_order if isinstance(r, Event)]
    return events, [r for r in in_order if isinstance(r, Skipped)], removed_ids


def is_occurrence(item: object) -> bool:
    """True for a plain occurrence of a series (Graph ``type: occurrence``), which derives from its master."""
    return isinstance(item, dict) and item.get("type") == "occurrence" and "@removed" not in item


def occurrence_refs(items: Sequence[Any]) -> list[tuple[str, str, Moment]]:
    """(id, seriesMasterId, start) of each well-formed occurrence; start is a date for all-day ones."""
    refs: list[tuple[str, str, Moment]] = []
    for item in items:
        if not is_occurrence(item):
            continue
        try:
            _, start, _, _, _ = _times(item, item_id(item))
        except NormalizeError:
            continue
        if start is not None:
            refs.append((item_id(item), text(item.get("seriesMasterId")), start))
    return refs


def _times(
    item: dict[str, Any], ext_id: str
) -> tuple[bool, Moment | None, Moment | None, str | None, str | None]:
    """(all_day, start, end, start_tz, end_tz) — provider rules 9, 10, 11.

    Every event Graph lists carries both start and end; without them a row could not follow the
    storage rule, so an item lacking either (a ``$select`` that left them out, a broken item) is refused.
    """
    all_day = item.get("isAllDay")
    if not isinstance(all_day, bool | None):
        raise NormalizeError(ext_id, f"isAllDay is {_json_type(all_day)}, not true or false")
    all_day = bool(all_day)
    start_obj, end_obj = item.get("start"), item.get("end")
    if not isinstance(start_obj, dict) or not isinstance(end_obj, dict):
        raise NormalizeError(ext_id, "missing start or end")
    if not start_obj.get("dateTime") or not end_obj.get("dateTime"):
        raise NormalizeError(ext_id, "missing start or end dateTime")
    if all_day:  # floating: the date part, whatever the zone; end is the exclusive next midnight
        first = parse_date(ext_id, start_obj["dateTime"], "start")
        after = parse_date(ext_id, end_obj["dateTime"], "end")
        last = first if after == first else after - ONE_DAY
        check_order(ext_id, first, last)
        return True, first, last, None, None
    original_zone = text(item.get("originalStartTimeZone"))
    start = parse_datetime(ext_id, start_obj["dateTime"], "start", _zone(start_obj, original_zone))
    end = parse_datetime(ext_id, end_obj["dateTime"], "end", _zone(end_obj, original_zone))
    check_order(ext_id, start, end)
    start_tz = iana_name(original_zone) or iana_name(text(start_obj.get("timeZone"))) or "UTC"
    end_tz = iana_name(text(item.get("originalEndTimeZone"))) or iana_name(text(end_obj.get("timeZone")))
    return False, start, end, start_tz, end_tz or start_tz


def _check_types(item: dict[str, Any], ext_id: str) -> None:
    """NormalizeError unless every property read has its Graph JSON type (see JSON_TYPES)."""
    for name, expected in JSON_TYPES.items():
        value = item.get(name)
        if value is not None and not isinstance(value, expected):
            raise NormalizeError(ext_id, f"{name} is {_json_type(value)}, expected {_json_type(expected)}")
    for name in ("start", "end"):
        obj = as_dict(item.get(name))
        for key in ("dateTime", "timeZone"):
            if not isinstance(obj.get(key), str | None):
                raise NormalizeError(ext_id, f"{name}.{key} is {_json_type(obj[key])}, expected a string")
    body = as_dict(item.get("body"))
    if not isinstance(body.get("content"), str | None) or text(body.get("contentType")).lower() not in (
            "", "html", "text") or not isinstance(body.get("contentType"), str | None):
        raise NormalizeError(ext_id, "body is not {contentType: html|text, content: string}")
    minutes = item.get("reminderMinutesBeforeStart")  # the one number: a boolean is not one, nor 2**40
    if isinstance(minutes, bool) or (isinstance(minutes, int) and minutes not in INT32):
        raise NormalizeError(ext_id, f"reminderMinutesBeforeStart {minutes!r} is not a 32-bit number")


def _json_type(value: object) -> str:
    names = {str: "a string", bool: "true or false", int: "a number", float: "a number", dict: "an object",
             list: "an array", type(None): "null"}
    kind = value if isinstance(value, type) else type(value)
    return names.get(kind, kind.__name__)


def _zone(obj: dict[str, Any], original: str) -> Any:
    return zone(text(obj.get("timeZone")) or "UTC") or zone(original) or UTC


def _series(item: dict[str, Any], event: Event) -> Event:
    """Master: RRULE (+ EXDATE for cancelledOccurrences) and the seed's two Outlook flags.

    remove_child_instances: the series' occurrences are derived from the master, not stored as rows.
    remove_cancelled_instances: cancelled occurrences are removed (listed as exclusions), not kept as
    cancelled rows.
    """
    recurrence = as_dict(item.get("recurrence"))
    rec_tz = iana_name(text(as_dict(recurrence.get("range")).get("recurrenceTimeZone"))) or event.start_tz
    lines: list[str] = []
    if recurrence:
        try:
            lines.append(graph_to_rrule(recurrence, all_day=event.all_day, tz=rec_tz))
        except NormalizeError as exc:
            raise NormalizeError(event.ext_id, exc.reason) from None
    excluded = _cancelled_dates(item)
    lines += [_exdate(day, event, rec_tz) for day in excluded]
    return dataclasses.replace(
        event,
        recurrence=tuple(lines),
        excluded_dates=excluded,
        remove_child_instances=True,
        remove_cancelled_instances=True,
    )


def _cancelled_dates(item: dict[str, Any]) -> tuple[date, ...]:
    """Dates from ``cancelledOccurrences`` (``OID.{masterId}.{yyyy-MM-dd}``); malformed ones skipped."""
    days = set()
    for value in as_list(item.get("cancelledOccurrences")):
        try:
            days.add(date.fromisoformat(str(value).rsplit(".", 1)[-1]))
        except ValueError:
            continue
    return tuple(sorted(days))


def _exdate(day: date, event: Event, rec_tz: str | None) -> str:
    if event.all_day or not isinstance(event.start, datetime):
        return f"EXDATE;VALUE=DATE:{day:%Y%m%d}"
    where = zone(rec_tz) or UTC
    local = datetime.combine(day, event.start.astimezone(where).time())
    if iana_name(rec_tz) in (None, "UTC"):
        return f"EXDATE:{local:%Y%m%dT%H%M%S}Z"
    return f"EXDATE;TZID={iana_name(rec_tz)}:{local:%Y%m%dT%H%M%S}"


def _status(item: dict[str, Any]) -> EventStatus:
    if item.get("isCancelled"):
        return "cancelled"
    return "tentative" if item.get("showAs") == "tentative" else "confirmed"


def _location(item: dict[str, Any]) -> str:
    name = text(as_dict(item.get("location")).get("displayName"))
    if name:
        return name
    names = (text(as_dict(loc).get("displayName")) for loc in as_list(item.get("locations")))
    return "; ".join(n for n in names if n)


def _original_start(item: dict[str, Any], ext_id: str, all_day: bool, start: Moment | None,
                    master: Event | None) -> Moment | None:
    value = item.get("originalStart")
    if not value:
        return start if item.get("type") == "occurrence" else None
    moment = parse_datetime(ext_id, value, "originalStart", UTC)
    if not all_day:
        return moment
    if item.get("type") == "occurrence" and isinstance(start, date):
        return start  # an occurrence nobody moved sits on its slot, and its floating date is exact
    return _all_day_slot(moment, _series_zone(master))


def _all_day_slot(moment: datetime, creator_zone: str | None = None) -> date:
    """The day of an all-day series slot that Graph gives as ``originalStart`` (a UTC instant).

    For all-day items Graph reports ``originalStart`` as midnight in the zone the series was made in,
    converted to UTC, and ``originalStartTimeZone`` as merely the zone we asked for (UTC): a series
    made at UTC+2 says 22:00Z the day before (microsoft-graph-docs issues 2804 and 7163). The
    master's ``recurrenceTimeZone`` names that zone, but an invitee's copy may leave it blank (7163);
    without it the day is read from the time itself: offsets run from UTC-12 to UTC+14, so a midnight
    at 00:00-10:00Z lies at or west of Greenwich (same day) and a later one east of it (next day).
    Where both are possible (10:00-12:00Z) east wins, except exactly 10:00Z (Hawaii).
    """
    where = zone(creator_zone) if creator_zone else None
    if where is not None:
        local = moment.astimezone(where)
        if local.time() == time(0):
            return local.date()
    utc = moment.astimezone(UTC)
    return utc.date() + ONE_DAY if utc.time() > time(10) else utc.date()


def _series_zone(master: Event | None) -> str | None:
    """The master's ``recurrenceTimeZone`` (as sent, a Windows or IANA name), if it has one."""
    raw = master.raw if master is not None and isinstance(master.raw, dict) else {}
    return text(as_dict(as_dict(raw.get("recurrence")).get("range")).get("recurrenceTimeZone")) or None


def _organizer(value: object) -> Organizer | None:
    address = as_dict(as_dict(value).get("emailAddress"))
    if not address:
        return None
    return Organizer(text(address.get("name")), text(address.get("address")))


def _attendee(obj: dict[str, Any]) -> Attendee:
    address = as_dict(obj.get("emailAddress"))
    response = text(as_dict(obj.get("status")).get("response"))
    kind = text(obj.get("type"))
    return Attendee(
        email=text(address.get("address")),
        name=text(address.get("name")),
        status=RESPONSES.get(response, "needsAction"),
        optional=kind == "optional",
        resource=kind == "resource",
        organizer=response == "organizer",
    )


def _reminders(item: dict[str, Any]) -> tuple[Reminder, ...]:
    minutes = item.get("reminderMinutesBeforeStart")
    if not item.get("isReminderOn") or not isinstance(minutes, int):
        return ()
    return (Reminder("popup", minutes),)


def _conference(item: dict[str, Any]) -> Conference | None:
    if not item.get("isOnlineMeeting"):
        return None
    provider = text(item.get("onlineMeetingProvider")) or "unknown"
    meeting = item.get("onlineMeeting")
    uri = text(as_dict(meeting).get("joinUrl")) or text(item.get("onlineMeetingUrl"))
    data = {"onlineMeeting": meeting, "onlineMeetingProvider": provider}
    return Conference(type=provider, uri=uri, data_json=compact_json(data))


def _attachment(obj: dict[str, Any]) -> Attachment:
    size = obj.get("size")
    return Attachment(
        title=text(obj.get("name")),
        mime_type=text(obj.get("contentType")),
        file_id=text(obj.get("id")),
        size=size if isinstance(size, int) else None,
    )


def _etag(item: dict[str, Any]) -> str | None:
    """``@odata.etag``, else ``W/"<changeKey>"`` — the same value in the form If-Match expects."""
    change_key = text(item.get("changeKey"))
    return text(item.get("@odata.etag")) or (f'W/"{change_key}"' if change_key else None)


def _is_master(item: object) -> bool:
    return isinstance(item, dict) and item.get("type") == "seriesMaster" and "@removed" not in item


def _raw_id(item: object) -> str:
    return text(item.get("id")) if isinstance(item, dict) else ""

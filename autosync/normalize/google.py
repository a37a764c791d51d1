"""Google Calendar v3 event JSON -> model.Event (reading); writing lives in google_write, re-exported here.

Reference: https://developers.google.com/workspace/calendar/api/v3/reference/events (Event resource)
and https://developers.google.com/workspace/calendar/api/guides/sync
(tombstones, exclusive all-day ends, instance ids).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
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
from autosync.normalize.google_write import google_body, google_patch
from autosync.normalize.timezones import zone

__all__ = ["FROM_GMAIL_WRITABLE", "SYNCED_EVENT_TYPES", "event_from_google", "google_body", "google_patch",
           "page_from_google"]

# The Google event types MiPlanIt syncs, sent as events.list/events.watch `eventTypes` (unset, Google
# returns every type). `default` is an ordinary event; `fromGmail` is a reservation Gmail put on the
# calendar (a flight, a hotel, a table): both are things the user has to be at. Not synced: `birthday`
# (every contact's birthday, annual, mostly read-only), and the Workspace status entries `focusTime`,
# `outOfOffice` and `workingLocation` (primary calendar only, writable only with their own properties,
# and moving one auto-declines meetings) — see the README's "Google event types".
SYNCED_EVENT_TYPES = ("default", "fromGmail")
# Event fields a client may change on an event from Gmail. Google accepts only reminders, colorId,
# visibility, status and extendedProperties there (Google Workspace Updates, May 2024, "Google Calendar
# API event type fromGmail"; quoted in phw198/OutlookGoogleCalendarSync#1988); of those, MiPlanIt
# edits reminders, and deletes (status) go through events.delete.
FROM_GMAIL_WRITABLE = frozenset({"reminders", "reminders_use_default"})

STATUSES: dict[str, EventStatus] = {
    "confirmed": "confirmed",
    "tentative": "tentative",
    "cancelled": "cancelled",
}
# gcal_sync's SyntheticEventId format; Google calls ids opaque, so this is only a best-effort fallback.
INSTANCE_ID = re.compile(r"^(?P<master>.+)_(?P<stamp>\d{8}(?:T\d{6}Z)?)$")


def event_from_google(
    item: dict[str, Any], *, default_reminders: Sequence[dict[str, Any]] = (), calendar_tz: str | None = None
) -> Event:
    """Normalize one Google event resource; raises NormalizeError for a malformed item.

    A cancelled item never raises (except for a missing id): if its details cannot be read it is
    returned as a tombstone carrying only id, recurring_event_id and original_start.
    """
    ext_id = item_id(item)
    status = STATUSES.get(text(item.get("status")), "confirmed")  # unknown/missing -> confirmed
    if status == "cancelled" and not isinstance(item.get("start"), dict):
        return _tombstone(item, ext_id, calendar_tz)
    try:
        return _full_event(item, ext_id, status, default_reminders, calendar_tz)
    except NormalizeError:
        if status == "cancelled":
            return _tombstone(item, ext_id, calendar_tz)
        raise


def page_from_google(
    items: Sequence[Any], *, default_reminders: Sequence[dict[str, Any]] = (), calendar_tz: str | None = None
) -> tuple[list[Event], list[Skipped]]:
    """Normalize a page of items; a bad item becomes a Skipped and never stops the page.

    An item of a type MiPlanIt does not sync (SYNCED_EVENT_TYPES; listed anyway, or imported before
    the eventTypes filter) becomes a deletion of its id: no row is made for it and an old one goes.
    """
    events: list[Event] = []
    skipped: list[Skipped] = []
    for item in items:
        try:
            if isinstance(item, dict) and text(item.get("eventType")) not in ("", *SYNCED_EVENT_TYPES):
                events.append(_unsynced(item))
                continue
            event = event_from_google(item, default_reminders=default_reminders, calendar_tz=calendar_tz)
            events.append(event)
        except NormalizeError as exc:
            skipped.append(Skipped(exc.ext_id or _raw_id(item), exc.reason))
        except (TypeError, ValueError, KeyError, AttributeError) as exc:  # a shape we did not foresee
            skipped.append(Skipped(_raw_id(item), f"unexpected {type(exc).__name__}: {exc}"))
    return events, skipped


def _unsynced(item: dict[str, Any]) -> Event:
    """A deletion of an item whose type is not synced. Without a series link on purpose: a cancelled
    occurrence of an unknown series would be recorded as a row of its own."""
    return Event(ext_id=item_id(item), status="cancelled", event_type=text(item.get("eventType")),
                 updated=parse_utc(item.get("updated")), etag=text(item.get("etag")) or None, raw=item)


def _full_event(
    item: dict[str, Any],
    ext_id: str,
    status: EventStatus,
    default_reminders: Sequence[dict[str, Any]],
    calendar_tz: str | None,
) -> Event:
    all_day, start, end, start_tz, end_tz = _times(item, ext_id, calendar_tz)
    reminders_obj = as_dict(item.get("reminders"))
    use_default = bool(reminders_obj.get("useDefault"))
    reminder_src = default_reminders if use_default else as_list(reminders_obj.get("overrides"))
    return Event(
        ext_id=ext_id,
        status=status,
        summary=text(item.get("summary")),
        description=text(item.get("description")),
        location=text(item.get("location")),
        all_day=all_day,
        start=start,
        end=end,
        start_tz=start_tz,
        end_tz=end_tz,
        recurrence=tuple(line for line in as_list(item.get("recurrence")) if isinstance(line, str)),
        recurring_event_id=text(item.get("recurringEventId")) or None,
        original_start=_moment(ext_id, item.get("originalStartTime"), calendar_tz, "originalStartTime"),
        organizer=_organizer(item.get("organizer")),
        attendees=tuple(_attendee(a) for a in as_list(item.get("attendees")) if isinstance(a, dict)),
        reminders=tuple(_reminder(ext_id, r) for r in reminder_src if isinstance(r, dict)),
        reminders_use_default=use_default,
        conference=_conference(item),
        html_link=text(item.get("htmlLink")),
        hangout_link=text(item.get("hangoutLink")),
        attachments=tuple(_attachment(a) for a in as_list(item.get("attachments")) if isinstance(a, dict)),
        event_type=text(item.get("eventType")) or "default",
        updated=parse_utc(item.get("updated")),
        etag=text(item.get("etag")) or None,
        raw=item,
    )


def _tombstone(item: dict[str, Any], ext_id: str, calendar_tz: str | None) -> Event:
    """A deleted event / cancelled occurrence: id, series link and original slot only (provider rule 6)."""
    master = text(item.get("recurringEventId")) or None
    try:
        original = _moment(ext_id, item.get("originalStartTime"), calendar_tz, "originalStartTime")
    except NormalizeError:
        original = None
    match = INSTANCE_ID.match(ext_id)
    if match and (master is None or master == match["master"]):
        master = master or match["master"]
        original = original or _stamp(match["stamp"])
    return Event(
        ext_id=ext_id,
        status="cancelled",
        recurring_event_id=master,
        original_start=original,
        updated=parse_utc(item.get("updated")),
        etag=text(item.get("etag")) or None,
        raw=item,
    )


def _stamp(stamp: str) -> Moment | None:
    """The original start encoded in an instance id suffix (UTC date-time or all-day date)."""
    try:
        if len(stamp) == 8:
            return date(int(stamp[:4]), int(stamp[4:6]), int(stamp[6:]))
        return datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def _times(
    item: dict[str, Any], ext_id: str, calendar_tz: str | None
) -> tuple[bool, Moment, Moment, str | None, str | None]:
    """(all_day, start, end, start_tz, end_tz); all-day ends become the inclusive last day."""
    start_obj, end_obj = as_dict(item.get("start")), as_dict(item.get("end"))
    if start_obj.get("dateTime") is None and start_obj.get("date") is None:
        raise NormalizeError(ext_id, "missing start")
    if start_obj.get("dateTime") is None:
        start_day = parse_date(ext_id, start_obj.get("date"), "start")
        if end_obj.get("dateTime") is not None:
            raise NormalizeError(ext_id, "start is a date but end is a dateTime")
        if end_obj.get("date") is None:  # endTimeUnspecified (or no end at all): a one-day event
            return True, start_day, start_day, None, None
        end_exclusive = parse_date(ext_id, end_obj.get("date"), "end")
        last_day = start_day if end_exclusive == start_day else end_exclusive - ONE_DAY
        check_order(ext_id, start_day, last_day)
        return True, start_day, last_day, None, None
    start_tz = text(start_obj.get("timeZone")) or calendar_tz or None
    start = parse_datetime(ext_id, start_obj.get("dateTime"), "start", zone(start_tz) or zone(calendar_tz))
    if end_obj.get("dateTime") is None:
        if end_obj.get("date") is not None:
            raise NormalizeError(ext_id, "start is a dateTime but end is a date")
        return False, start, start, start_tz, start_tz  # endTimeUnspecified: end = start
    end_tz = text(end_obj.get("timeZone")) or calendar_tz or None
    end = parse_datetime(ext_id, end_obj.get("dateTime"), "end", zone(end_tz) or zone(calendar_tz))
    check_order(ext_id, start, end)
    return False, start, end, start_tz, end_tz


def _moment(ext_id: str, value: object, calendar_tz: str | None, what: str) -> Moment | None:
    """An EventDateTime as a date (all-day) or UTC datetime; None when absent."""
    obj = as_dict(value)
    if obj.get("dateTime") is not None:
        where = zone(text(obj.get("timeZone"))) or zone(calendar_tz)
        return parse_datetime(ext_id, obj.get("dateTime"), what, where)
    if obj.get("date") is not None:
        return parse_date(ext_id, obj.get("date"), what)
    return None


def _organizer(value: object) -> Organizer | None:
    obj = as_dict(value)
    if not obj:
        return None
    if obj.get("self") is True:
        return Organizer("", "")  # the seed's rule: the calendar owner organizes
    return Organizer(text(obj.get("displayName")), text(obj.get("email")))


def _attendee(obj: dict[str, Any]) -> Attendee:
    return Attendee(
        email=text(obj.get("email")),
        name=text(obj.get("displayName")),
        status=text(obj.get("responseStatus")) or "needsAction",
        optional=bool(obj.get("optional")),
        resource=bool(obj.get("resource")),
        organizer=bool(obj.get("organizer")),
    )


def _reminder(ext_id: str, obj: dict[str, Any]) -> Reminder:
    try:
        minutes = int(obj.get("minutes", 0))
    except (TypeError, ValueError):
        raise NormalizeError(ext_id, f"bad reminder minutes {obj.get('minutes')!r}") from None
    return Reminder(text(obj.get("method")) or "popup", minutes)


def _attachment(obj: dict[str, Any]) -> Attachment:
    return Attachment(
        title=text(obj.get("title")),
        url=text(obj.get("fileUrl")),
        mime_type=text(obj.get("mimeType")),
        file_id=text(obj.get("fileId")),
    )


def _conference(item: dict[str, Any]) -> Conference | None:
    data = as_dict(item.get("conferenceData"))
    if not data:
        return None
    key = as_dict(as_dict(data.get("conferenceSolution")).get("key")).get("type")
    pending_key = as_dict(as_dict(data.get("createRequest")).get("conferenceSolutionKey")).get("type")
    entry_points = [e for e in as_list(data.get("entryPoints")) if isinstance(e, dict) and text(e.get("uri"))]
    video = [e for e in entry_points if e.get("entryPointType") == "video"]
    chosen = (video or entry_points or [{}])[0]
    uri = text(chosen.get("uri")) or text(item.get("hangoutLink"))
    return Conference(type=text(key) or text(pending_key), uri=uri, data_json=compact_json(data))


def _raw_id(item: object) -> str:
    return text(item.get("id")) if isinstance(item, dict) else ""

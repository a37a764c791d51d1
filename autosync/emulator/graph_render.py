"""Rendering of stored Graph items to event JSON: full, bare occurrence, tombstone, $select.

Follows Graph's calendarView/delta and event resource documentation (PROVIDER_RULES.md 20-22)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from autosync.emulator.graph_body import preview, render_body
from autosync.emulator.graph_errors import bad_request
from autosync.emulator.graph_model import Calendar, StoredEvent, occurrence_ical_uid
from autosync.emulator.graph_time import (
    NEVER,
    graph_date_stamp,
    graph_dt,
    graph_stamp,
    resolve_zone,
    windows_name,
)

EVENT_TYPE = "#microsoft.graph.event"
_PREFER_RE = re.compile(r'([\w.\-]+)\s*=\s*("([^"]*)"|[^,\s]+)')
SELECTABLE = {
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "transactionId",
    "originalStartTimeZone",
    "originalEndTimeZone",
    "iCalUId",
    "reminderMinutesBeforeStart",
    "isReminderOn",
    "hasAttachments",
    "subject",
    "bodyPreview",
    "importance",
    "sensitivity",
    "isAllDay",
    "isCancelled",
    "isOrganizer",
    "responseRequested",
    "seriesMasterId",
    "showAs",
    "type",
    "webLink",
    "onlineMeetingUrl",
    "isOnlineMeeting",
    "onlineMeetingProvider",
    "allowNewTimeProposals",
    "isDraft",
    "hideAttendees",
    "recurrence",
    "onlineMeeting",
    "responseStatus",
    "body",
    "start",
    "end",
    "location",
    "locations",
    "attendees",
    "organizer",
    "originalStart",
    "cancelledOccurrences",
    "id",
}


@dataclass
class Prefs:
    """The Prefer header values of one request (they are never part of a token, provider rule 14)."""

    zone_name: str | None = None
    zone: ZoneInfo | None = None
    max_page_size: int | None = None
    text_body: bool = False

    def applied(self) -> dict[str, str]:
        """The Preference-Applied header echo."""
        parts = []
        if self.max_page_size is not None:
            parts.append(f"odata.maxpagesize={self.max_page_size}")
        if self.zone_name is not None:
            parts.append(f'outlook.timezone="{self.zone_name}"')
        if self.text_body:
            parts.append('outlook.body-content-type="text"')
        return {"Preference-Applied": ", ".join(parts)} if parts else {}


def parse_prefs(headers: Mapping[str, str]) -> Prefs:
    """Read every ``Prefer`` header (separate headers or comma-joined)."""
    getter = getattr(headers, "get_all", None)
    values = getter("Prefer") or [] if getter else [headers.get("Prefer") or ""]
    prefs = Prefs()
    for value in values:
        for name, raw, quoted in _PREFER_RE.findall(value or ""):
            text = quoted if raw.startswith('"') else raw
            if name.lower() == "odata.maxpagesize":
                if not text.isdigit() or int(text) < 1:
                    raise bad_request(f"Invalid odata.maxpagesize '{text}'.")
                prefs.max_page_size = int(text)
            elif name.lower() == "outlook.timezone":
                prefs.zone, prefs.zone_name = resolve_zone(text), text
            elif name.lower() == "outlook.body-content-type":
                prefs.text_body = text.lower() == "text"
    return prefs


@dataclass
class Ctx:
    """What rendering needs from the request."""

    base_url: str
    prefs: Prefs
    calendars: Mapping[str, Calendar]
    written: bool = False  # the answer to the POST/PATCH that wrote the item

    def label(self) -> str:
        """The zone name responses carry: the requested one (``Prefer: outlook.timezone``), else UTC."""
        return self.prefs.zone_name or "UTC"

    def dtz(self, value: datetime, all_day: bool) -> dict[str, str]:
        """A dateTimeTimeZone; all-day values stay midnight-to-midnight whatever the zone (provider rule 10)."""
        label = self.label()
        if all_day:
            return {"dateTime": graph_dt(value), "timeZone": label}
        local = value.astimezone(self.prefs.zone or ZoneInfo("UTC")).replace(tzinfo=None)
        return {"dateTime": graph_dt(local), "timeZone": label}


def _online_meeting(ev_key: str, props: dict[str, Any]) -> dict[str, Any] | None:
    if not props.get("isOnlineMeeting") or props.get("onlineMeetingProvider") != "teamsForBusiness":
        return None
    digest = hashlib.sha1(ev_key.encode(), usedforsecurity=False).hexdigest()
    return {
        "joinUrl": f"https://teams.microsoft.com/l/meetup-join/19%3ameeting_{digest}%40thread.v2/0"
        f"?context=%7b%22Tid%22%3a%22{digest[:8]}%22%7d",
        "conferenceId": str(int(digest[:8], 16))[:9],
        "tollNumber": "+1 425 555 0123",
    }


def _body(props: dict[str, Any], ctx: Ctx) -> tuple[dict[str, str], str]:
    stored = props["body"]
    return render_body(stored, want_text=ctx.prefs.text_body, written=ctx.written), preview(stored)


def render_full(
    ev: StoredEvent,
    ctx: Ctx,
    *,
    slot: tuple[datetime, datetime] | None = None,
    occurrence: tuple[str, datetime] | None = None,
    master: StoredEvent | None = None,
    delta: bool = False,
) -> dict[str, Any]:
    """Full event JSON; for an occurrence pass the master as ``ev`` plus ``occurrence=(id, original)``."""
    props = ev.props
    calendar = ctx.calendars.get(ev.calendar_id)
    owner = calendar.email.lower() if calendar else ""
    organizer = props.get("organizer") or {
        "emailAddress": {
            "name": calendar.display_name if calendar else "",
            "address": calendar.email if calendar else "",
        }
    }
    is_organizer = organizer.get("emailAddress", {}).get("address", "").lower() == owner
    response = (
        {"response": "organizer", "time": NEVER}
        if is_organizer
        else props.get("responseStatus") or {"response": "none", "time": NEVER}
    )
    body, body_preview = _body(props, ctx)
    item_id, kind, uid = ev.id, ev.kind, ev.ical_uid
    start, end = slot or (ev.start, ev.end)
    series_id, original = ev.series_master_id, ev.original_start
    if occurrence is not None:
        item_id, original = occurrence
        kind, series_id, uid = "occurrence", ev.id, occurrence_ical_uid(ev.ical_uid, original)
    elif ev.kind == "exception" and original is not None:
        uid = occurrence_ical_uid(master.ical_uid if master else ev.ical_uid, original)
    out: dict[str, Any] = {"@odata.type": EVENT_TYPE} if delta else {}
    out.update(
        {
            "@odata.etag": f'W/"{ev.change_key}"',
            "id": item_id,
            "createdDateTime": graph_stamp(ev.created),
            "lastModifiedDateTime": graph_stamp(ev.modified),
            "changeKey": ev.change_key,
            "categories": list(props.get("categories", [])),
        }
    )
    if props.get("transactionId") and occurrence is None:
        out["transactionId"] = props["transactionId"]
    series = ev if occurrence is not None or ev.kind == "seriesMaster" else master
    out.update(
        {
            "originalStartTimeZone": ctx.label() if ev.all_day else _win(ev.start_zone),
            "originalEndTimeZone": ctx.label() if ev.all_day else _win(ev.end_zone),
            "iCalUId": uid,
            "reminderMinutesBeforeStart": props["reminderMinutesBeforeStart"],
            "isReminderOn": props["isReminderOn"],
            "hasAttachments": bool(ev.attachments),
            "subject": props["subject"],
            "bodyPreview": body_preview,
            "importance": props["importance"],
            "sensitivity": props["sensitivity"],
            "isAllDay": ev.all_day,
            "isCancelled": props.get("isCancelled", False),
            "isOrganizer": is_organizer,
            "responseRequested": props["responseRequested"],
            "seriesMasterId": series_id,
            "showAs": props["showAs"],
            "type": kind,
            "webLink": f"{ctx.base_url}/owa/?itemid={quote(item_id, safe='')}&exvsurl=1&path=/calendar/item",
            "onlineMeetingUrl": None,
            "isOnlineMeeting": props["isOnlineMeeting"],
            "onlineMeetingProvider": props["onlineMeetingProvider"],
            "allowNewTimeProposals": props["allowNewTimeProposals"],
            "isDraft": props["isDraft"],
            "hideAttendees": props["hideAttendees"],
            "recurrence": _recurrence(ev, is_organizer) if kind == "seriesMaster" else None,
            "onlineMeeting": _online_meeting(ev.key, props),
            "responseStatus": response,
            "body": body,
            "start": ctx.dtz(start, ev.all_day),
            "end": ctx.dtz(end, ev.all_day),
            "location": props["location"],
            "locations": props["locations"],
            "attendees": props["attendees"],
            "organizer": organizer,
        }
    )
    if original is not None:
        out["originalStart"] = graph_date_stamp(_original_instant(original, ev.all_day, series))
    return out


def _win(zone_key: str) -> str:
    return windows_name(resolve_zone(zone_key))


def _original_instant(original: datetime, all_day: bool, series: StoredEvent | None) -> datetime:
    """``originalStart`` of an instance: for an all-day series, the creator's local midnight in UTC.

    Graph keeps an all-day slot as midnight in the zone the series was made in and converts that to
    UTC for ``originalStart``, while ``originalStartTimeZone`` only echoes the requested zone; so a
    series made at UTC+2 reports the previous day at 22:00Z (Microsoft's answer in
    microsoft-graph-docs issue 2804, and issue 7163: "midnight in the recurrenceTimeZone converted to
    UTC"). Stored all-day originals are floating midnights (read as UTC); timed ones are instants.
    """
    if not all_day or series is None or series.recurrence is None:
        return original
    zone = resolve_zone(series.recurrence["range"]["recurrenceTimeZone"] or series.start_zone)
    return original.replace(tzinfo=None).replace(tzinfo=zone).astimezone(UTC)


def _recurrence(ev: StoredEvent, is_organizer: bool) -> dict[str, Any] | None:
    """A master's recurrence; an attendee's copy of an all-day series has no recurrenceTimeZone.

    Reported in microsoft-graph-docs issue 7163 (Microsoft could not reproduce it, so clients must
    not depend on the zone being there): the organizer's copy names it, an invitee's is blank.
    """
    if ev.recurrence is None or is_organizer or not ev.all_day:
        return ev.recurrence
    return {**ev.recurrence, "range": {**ev.recurrence["range"], "recurrenceTimeZone": ""}}


def cancelled_occurrences(master: StoredEvent) -> list[str]:
    """``cancelledOccurrences`` of a master: ``OID.{masterId}.{yyyy-MM-dd}`` per cancelled slot.

    Graph returns the property only when ``$select`` names it on a GET of the master (microsoft-graph
    v1.0 event model; a 2025 write-up on martin-machacek.com shows the value format); the date is the
    slot's day on the series' own clock.
    """
    if master.recurrence is None:
        return []
    zone = resolve_zone(master.recurrence["range"]["recurrenceTimeZone"] or master.start_zone)
    days = set()
    for stamp in master.cancelled:
        moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=stamp)
        days.add(moment.date() if master.all_day else moment.astimezone(zone).date())
    return [f"OID.{master.id}.{day.isoformat()}" for day in sorted(days)]


def render_bare(
    master: StoredEvent, occ_id: str, slot: tuple[datetime, datetime], ctx: Ctx
) -> dict[str, Any]:
    """A plain occurrence as calendarView/delta returns it: no subject, attendees... (provider rule 20)."""
    return {
        "@odata.type": EVENT_TYPE,
        "@odata.etag": f'W/"{master.change_key}"',
        "id": occ_id,
        "seriesMasterId": master.id,
        "type": "occurrence",
        "start": ctx.dtz(slot[0], master.all_day),
        "end": ctx.dtz(slot[1], master.all_day),
    }


def render_removed(item_id: str) -> dict[str, Any]:
    """A delta tombstone."""
    return {"@odata.type": EVENT_TYPE, "id": item_id, "@removed": {"reason": "deleted"}}


def parse_select(value: str | None) -> list[str] | None:
    """The ``$select`` list; 400 for a property the event type does not have."""
    if value is None:
        return None
    names = [n.strip() for n in value.split(",") if n.strip()]
    for name in names:
        if name not in SELECTABLE:
            raise bad_request(
                f"Could not find a property named '{name}' on type 'microsoft.graph.event'.",
                "RequestBroker--ParseUri",
            )
    return names


def apply_select(event: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
    """Keep ``@odata.*`` keys, ``id`` and the selected properties."""
    if select is None:
        return event
    keep = set(select) | {"id"}
    if "location" in keep:  # Graph returns locations along with a selected location (sample event-get.md)
        keep.add("locations")
    return {k: v for k, v in event.items() if k.startswith("@") or k in keep}


def render_attachments(ev: StoredEvent) -> list[dict[str, Any]]:
    """fileAttachment resources of an item."""
    out = []
    for index, att in enumerate(ev.attachments):
        raw = att.get("contentBytes", "")
        out.append(
            {
                "@odata.type": "#microsoft.graph.fileAttachment",
                "@odata.mediaContentType": att["contentType"],
                "id": f"{ev.id[:-1]}ATT{index}=",
                "lastModifiedDateTime": att["lastModifiedDateTime"],
                "name": att["name"],
                "contentType": att["contentType"],
                "size": len(raw) * 3 // 4,
                "isInline": att["isInline"],
                "contentId": None,
                "contentLocation": None,
                "contentBytes": raw,
            }
        )
    return out

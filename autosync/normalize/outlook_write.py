"""model.Event -> Microsoft Graph event JSON for POST/PATCH (Windows zone names, exclusive all-day end)."""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo
from typing import Any

from autosync.errors import NormalizeError
from autosync.model import Attendee, Event
from autosync.normalize.common import ONE_DAY
from autosync.normalize.recurrence import rrule_to_graph
from autosync.normalize.timezones import graph_zone, iana_name

GRAPH_MEETING_PROVIDERS = frozenset({"teamsForBusiness", "skypeForBusiness", "skypeForConsumer"})
WIRE_FORMAT = "%Y-%m-%dT%H:%M:%S"  # Graph's offset-less dateTime; sub-second precision is dropped


def graph_body(event: Event, *, create: bool = True) -> dict[str, Any]:
    """The JSON body for POST /events (``create``) or the source of a PATCH /events/{id}.

    Attendee responses are not writable and are not sent. Graph keeps one reminder: the first popup
    (else the first) reminder is sent. ``showAs`` is only sent for tentative events, so a free/busy
    choice made in Outlook is not overwritten. Recurrence goes only on series masters, via
    rrule_to_graph (NormalizeError when Graph cannot express the rule). The online meeting is
    requested on create only: Graph documents ``onlineMeetingProvider`` as unchangeable once set
    (https://learn.microsoft.com/graph/api/resources/event), so an update never carries it.
    """
    start, end = _start_end(event)
    body: dict[str, Any] = {
        "subject": event.summary,
        # The description is plain text: sent as html, Outlook would read "<b>&amp;</b> & < >" as markup
        # ("& &") and join its lines. bodytext explains how the HTML Graph reads back is undone.
        "body": {"contentType": "text", "content": event.description},
        "isAllDay": event.all_day,
        "start": start,
        "end": end,
        "location": {"displayName": event.location},
        "attendees": [_attendee(a) for a in event.attendees],
    }
    body |= _reminder(event)
    if event.status == "tentative":
        body["showAs"] = "tentative"
    if create and event.conference and event.conference.type in GRAPH_MEETING_PROVIDERS:
        body["isOnlineMeeting"] = True
        body["onlineMeetingProvider"] = event.conference.type
    if event.recurrence and event.recurring_event_id is None and event.start is not None:
        try:
            recurrence = rrule_to_graph(event.recurrence, event.start, event.start_tz or "UTC")
        except NormalizeError as exc:
            raise NormalizeError(event.ext_id, exc.reason) from None
        if recurrence is not None:
            body["recurrence"] = recurrence
    return body


def _start_end(event: Event) -> tuple[dict[str, str], dict[str, str]]:
    if event.start is None or event.end is None:
        raise NormalizeError(event.ext_id, "event has no start/end to write")
    if event.all_day:  # midnight to the EXCLUSIVE next midnight, floating
        win, _ = graph_zone(event.start_tz)
        first, after = _day(event.start), _day(event.end) + ONE_DAY
        return _wire(datetime.combine(first, datetime.min.time()), win), _wire(
            datetime.combine(after, datetime.min.time()), win
        )
    end_tz = event.end_tz or event.start_tz
    return _timed(event, event.start, event.start_tz), _timed(event, event.end, end_tz)


def _timed(event: Event, moment: date, tz_name: str | None) -> dict[str, str]:
    """Wall time in the zone Graph will apply to the Windows name; UTC where that would be ambiguous."""
    if not isinstance(moment, datetime):
        raise NormalizeError(event.ext_id, "a timed event needs datetime start/end")
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    win, where = graph_zone(tz_name)
    local = aware.astimezone(where)
    if not _reads_back(local, where, aware):  # repeated/skipped wall hour: keep the instant exact
        return _wire(aware.astimezone(UTC), "UTC")
    return _wire(local, win)


def _reads_back(local: datetime, where: tzinfo, aware: datetime) -> bool:
    naive = local.replace(tzinfo=None, microsecond=0, fold=0)  # the wire has no fold: readers take 0
    return naive.replace(tzinfo=where).astimezone(UTC) == aware.replace(microsecond=0).astimezone(UTC)


def _wire(moment: datetime, win: str) -> dict[str, str]:
    return {"dateTime": moment.strftime(WIRE_FORMAT), "timeZone": win}


def _day(moment: date) -> date:
    return moment.date() if isinstance(moment, datetime) else moment


def _attendee(attendee: Attendee) -> dict[str, Any]:
    kind = "resource" if attendee.resource else "optional" if attendee.optional else "required"
    return {"emailAddress": {"address": attendee.email, "name": attendee.name}, "type": kind}


def _reminder(event: Event) -> dict[str, Any]:
    if not event.reminders:
        return {"isReminderOn": False}
    chosen = next((r for r in event.reminders if r.method == "popup"), event.reminders[0])
    return {"isReminderOn": True, "reminderMinutesBeforeStart": chosen.minutes}


# Event field -> the Graph properties that carry it in a PATCH. Conference fields are absent on
# purpose: the online meeting is set on create only (see graph_body).
GRAPH_KEYS = {"summary": ("subject",), "description": ("body",), "location": ("location",),
              "all_day": ("isAllDay", "start", "end"), "start": ("start", "end"), "end": ("start", "end"),
              "start_tz": ("start", "end"), "end_tz": ("start", "end"), "recurrence": ("recurrence",),
              "attendees": ("attendees",), "reminders": ("reminderMinutesBeforeStart", "isReminderOn"),
              "reminders_use_default": ("reminderMinutesBeforeStart", "isReminderOn")}


def graph_patch(event: Event, changed: set[str], old_raw: dict[str, Any], base: Event | None) -> dict[str, Any]:
    """A PATCH body with only the properties of the ``changed`` Event fields.

    Only what changed is sent because Exchange mails a meeting's attendees about every update of
    their meeting, and Graph has no switch to stop it (nothing like Google's sendUpdates): a change
    that touches no meeting property, such as a reminder, then mails no one. Graph PATCH replaces
    collections whole, so provider-only attendees the app did not remove (not in ``base``) are kept.
    """
    full = graph_body(event, create=False)
    keys = {k for f in changed for k in GRAPH_KEYS.get(f, ())}
    body = {k: full[k] for k in keys if k in full}
    if "attendees" in body:
        mine = {a["emailAddress"]["address"].lower() for a in body["attendees"]}
        removed = {a.email.lower() for a in (base.attendees if base else ())} - {a.email.lower()
                                                                                 for a in event.attendees}
        for a in old_raw.get("attendees") or []:
            email = ((a.get("emailAddress") or {}).get("address") or "").lower()
            if email and email not in mine and email not in removed:
                body["attendees"].append({"emailAddress": a.get("emailAddress"), "type": a.get("type", "required")})
    return body


def unnamed_zone(old_raw: dict[str, Any]) -> bool:
    """True when an Outlook copy has no start zone autosync can name.

    Graph names the zone in ``originalStartTimeZone`` (Windows names); a legacy custom zone reads
    ``tzone://Microsoft/Custom`` and some items carry none. The start/end themselves come in UTC (we ask
    ``Prefer: outlook.timezone="UTC"``), so the import can only label such an event UTC — a label the
    user never chose, which a push must not write back.
    """
    return bool(old_raw) and iana_name(str(old_raw.get("originalStartTimeZone") or "")) is None

"""model.Event -> Google Calendar v3 JSON: insert bodies and array-merging PATCH bodies (provider rule 27).

Writes that carry conferenceData/attachments need ``conferenceDataVersion=1`` and
``supportsAttachments=true`` on the request (provider rule 29) — the adapter's job, not this module's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable
from dataclasses import fields
from datetime import UTC, date, datetime
from typing import Any

from autosync.errors import NormalizeError
from autosync.model import Event
from autosync.normalize.common import ONE_DAY, as_dict, as_list, text
from autosync.normalize.timezones import iana_name, is_iana, zone

MAX_OVERRIDES = 5  # Google rejects more than five reminder overrides
# Event field -> the Google top-level keys that carry it. Fields not listed are read-only or
# Outlook-only (organizer, html_link, hangout_link, event_type, etag, …) and never patched.
FIELD_KEYS: dict[str, tuple[str, ...]] = {
    "summary": ("summary",),
    "description": ("description",),
    "location": ("location",),
    "status": ("status",),
    "all_day": ("start", "end"),
    "start": ("start", "end"),
    "end": ("start", "end"),
    "start_tz": ("start", "end"),
    "end_tz": ("start", "end"),
    "recurrence": ("recurrence",),
    "attendees": ("attendees",),
    "reminders": ("reminders",),
    "reminders_use_default": ("reminders",),
    "attachments": ("attachments",),
    "conference": ("conferenceData",),
}
GOOGLE_KEYS = frozenset(k for keys in FIELD_KEYS.values() for k in keys)
EVENT_FIELDS = frozenset(f.name for f in fields(Event))


def google_body(event: Event) -> dict[str, Any]:
    """The JSON body for events.insert (and the source of every PATCH value)."""
    start, end = _start_end(event)
    body: dict[str, Any] = {
        "summary": event.summary,
        "description": event.description,
        "location": event.location,
        "status": event.status,
        "start": start,
        "end": end,
        "attendees": [_attendee(a) for a in event.attendees],
        "reminders": _reminders(event),
    }
    if event.recurrence:
        body["recurrence"] = list(event.recurrence)
    if event.attachments:
        body["attachments"] = [_attachment(a) for a in event.attachments]
    if event.conference and event.conference.data_json:
        body["conferenceData"] = json.loads(event.conference.data_json)
    return body


def google_patch(
    old_raw: dict[str, Any] | None, event: Event, changed: set[str], *, base: Event | None = None
) -> dict[str, Any]:
    """A PATCH body with only the changed top-level fields, arrays merged with the provider's copy.

    ``changed`` holds Event field names (``attendees``, ``start`` …) or Google keys (``conferenceData``);
    read-only fields are ignored, unknown names raise ValueError. Google PATCH replaces arrays whole,
    so attendees, reminders.overrides and attachments are three-way merged:
    - ``event`` (the app's version) wins for every entry it has (attendees keyed by lower-cased email,
      reminders by (method, minutes), attachments by fileUrl), on top of the provider's entry so
      provider-only sub-fields (comment, additionalGuests, id …) survive;
    - an attendee's ``responseStatus`` stays the provider's unless it is the calendar owner
      (``self``): a response belongs to the attendee and the app's copy may be stale;
    - provider entries the app does not have are KEPT, unless ``base`` (the version the app last
      synced) had them — then the app removed them on purpose and they are dropped.
    Without ``base`` nothing counts as removed. Switching all-day <-> timed nulls the other key,
    since Google merges nested objects such as ``start``.
    """
    keys = _google_keys(changed)
    full = google_body(event)
    old = old_raw or {}
    patch: dict[str, Any] = {}
    for key in sorted(keys):
        if key in {"start", "end"}:
            patch[key] = {"date": None, "dateTime": None, "timeZone": None} | full[key]
        elif key == "attendees":
            patch[key] = _merge_attendees(full[key], as_list(old.get("attendees")), base, event)
        elif key == "reminders":
            patch[key] = _merge_reminders(event, full[key], as_dict(old.get("reminders")), base)
        elif key == "attachments":
            removed = _removed(base.attachments if base else (), event.attachments, lambda a: a.url)
            patch[key] = _merge(full.get(key, []), as_list(old.get(key)), _url_key, removed)
        elif key in {"recurrence"}:
            patch[key] = full.get(key, [])
        else:
            patch[key] = full.get(key)  # conferenceData None clears the conference
    return patch


def _google_keys(changed: set[str]) -> set[str]:
    keys: set[str] = set()
    for name in changed:
        if name in FIELD_KEYS:
            keys.update(FIELD_KEYS[name])
        elif name in GOOGLE_KEYS:
            keys.add(name)
        elif name not in EVENT_FIELDS:
            raise ValueError(f"unknown field for a Google patch: {name!r}")
    return keys


def _start_end(event: Event) -> tuple[dict[str, Any], dict[str, Any]]:
    if event.start is None or event.end is None:
        raise NormalizeError(event.ext_id, "event has no start/end to write")
    if event.all_day:
        first, last = _day(event.start), _day(event.end)
        return {"date": first.isoformat()}, {"date": (last + ONE_DAY).isoformat()}  # exclusive end
    start_tz = _google_tz(event.start_tz) or "UTC"
    end_tz = _google_tz(event.end_tz) or start_tz
    return _timed(event, event.start, start_tz), _timed(event, event.end, end_tz)


def _google_tz(name: str | None) -> str | None:
    """The zone name to send Google: kept as is when IANA, mapped when Windows, else None."""
    return name if is_iana(name) else iana_name(name)


def _day(moment: date) -> date:
    return moment.date() if isinstance(moment, datetime) else moment


def _timed(event: Event, moment: date, tz_name: str) -> dict[str, Any]:
    if not isinstance(moment, datetime):
        raise NormalizeError(event.ext_id, "a timed event needs datetime start/end")
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    local = aware.astimezone(zone(tz_name) or UTC)
    return {"dateTime": local.isoformat(), "timeZone": tz_name}


def _attendee(attendee: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"email": attendee.email, "responseStatus": attendee.status}
    out["optional"] = attendee.optional
    if attendee.name:
        out["displayName"] = attendee.name
    if attendee.resource:
        out["resource"] = True
    return out


def _reminders(event: Event) -> dict[str, Any]:
    if event.reminders_use_default:
        return {"useDefault": True}
    overrides = [{"method": r.method, "minutes": r.minutes} for r in event.reminders]
    return {"useDefault": False, "overrides": overrides[:MAX_OVERRIDES]}


def _attachment(attachment: Any) -> dict[str, Any]:
    out = {"fileUrl": attachment.url, "title": attachment.title}
    if attachment.mime_type:
        out["mimeType"] = attachment.mime_type
    return out


def _merge_attendees(
    app: list[dict[str, Any]], provider: list[Any], base: Event | None, event: Event
) -> list[dict[str, Any]]:
    removed = _removed(base.attendees if base else (), event.attendees, lambda a: a.email.lower())
    by_email = {_email_key(p): p for p in provider if isinstance(p, dict) and _email_key(p)}
    merged = []
    for entry in app:
        old = by_email.get(_email_key(entry))
        if old is not None and not old.get("self") and "responseStatus" in old:
            entry = entry | {"responseStatus": old["responseStatus"]}
        merged.append(entry)
    return _merge(merged, provider, _email_key, removed)


def _merge_reminders(
    event: Event, full: dict[str, Any], old: dict[str, Any], base: Event | None
) -> dict[str, Any]:
    if event.reminders_use_default:
        return {"useDefault": True, "overrides": []}
    base_reminders = base.reminders if base and not base.reminders_use_default else ()
    removed = _removed(base_reminders, event.reminders, lambda r: (r.method, r.minutes))
    provider = [] if old.get("useDefault") else as_list(old.get("overrides"))
    overrides = _merge(full["overrides"], provider, _reminder_key, removed)
    return {"useDefault": False, "overrides": overrides[:MAX_OVERRIDES]}


def _merge(
    app: list[dict[str, Any]],
    provider: list[Any],
    key: Callable[[dict[str, Any]], Hashable],
    removed: set[Any],
) -> list[dict[str, Any]]:
    """App entries (over the provider's entry with the same key), then provider-only entries not removed."""
    provider_dicts = [p for p in provider if isinstance(p, dict)]
    by_key = {key(p): p for p in provider_dicts}
    out = [by_key.get(key(a), {}) | a for a in app]
    seen = {key(a) for a in app}
    out += [p for p in provider_dicts if key(p) not in seen and key(p) not in removed]
    return out


def _removed(base: Iterable[Any], current: Iterable[Any], key: Callable[[Any], Hashable]) -> set[Any]:
    return {key(x) for x in base} - {key(x) for x in current}


def _email_key(entry: dict[str, Any]) -> str:
    return text(entry.get("email")).lower()


def _reminder_key(entry: dict[str, Any]) -> tuple[str, Any]:
    return text(entry.get("method")), entry.get("minutes")


def _url_key(entry: dict[str, Any]) -> str:
    return text(entry.get("fileUrl"))


def google_type(row: dict[str, Any]) -> str:
    """The Google event type of a synced row: the provider copy's (the app cannot change it), else the row's."""
    raw = row.get("providerData") or {}
    return str(raw.get("eventType") or row.get("eventType") or "default")


def unsynced_type(row: dict[str, Any]) -> str | None:
    """Why a Google row must not be pushed at all: its type is one MiPlanIt does not sync (None: it may be).

    Such rows only exist when imported before the eventTypes filter (the event-types migration removes
    them) or written by the app with that type; pushing them would touch events the user manages elsewhere.
    """
    from autosync.normalize.google import SYNCED_EVENT_TYPES  # google.py imports this module

    kind = google_type(row)
    if kind in SYNCED_EVENT_TYPES:
        return None
    return f"Google {kind} events are not synced by MiPlanIt; the change was not pushed"


def from_gmail_split(kind: str, changed: set[str]) -> tuple[set[str], set[str]]:
    """(fields Google accepts, fields it refuses) of an app change to an event of type ``kind``."""
    from autosync.normalize.google import FROM_GMAIL_WRITABLE  # google.py imports this module

    if kind != "fromGmail":
        return changed, set()
    return changed & FROM_GMAIL_WRITABLE, changed - FROM_GMAIL_WRITABLE

"""In-memory Google Calendar state of the emulator: calendars, events, exceptions and write semantics."""

from __future__ import annotations

import copy
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from autosync.emulator import google_errors as err
from autosync.emulator import google_fields as fields
from autosync.emulator.core import Account
from autosync.emulator.google_time import (
    UTC,
    edt_value,
    fmt_in_zone,
    fmt_utc,
    instance_suffix,
    is_all_day,
    is_occurrence,
    split_instance_id,
    zone,
)

_ID_RE = re.compile(r"^[a-v0-9]{5,1024}$")


@dataclass
class Stored:
    """One stored event resource plus its change sequence number and creation order."""

    body: dict[str, Any]
    seq: int = 0
    order: int = 0


@dataclass
class GCalendar:
    """One Google calendar of an account."""

    id: str
    owner: Account
    summary: str
    time_zone: str = "UTC"
    primary: bool = False
    events: dict[str, Stored] = field(default_factory=dict)
    min_seq: int = 0
    updated: str = ""
    default_reminders: list[dict[str, Any]] = field(default_factory=lambda: [{"method": "popup", "minutes": 10}])


@dataclass
class GoogleSettings:
    """Behaviour switches tests can flip through the admin API."""

    sync_410_reason: bool = True
    empty_pages: bool = False
    updated_min_max_age_days: float | None = None
    expansion_horizon_days: int = 730


class GoogleState:
    """Every Google calendar and event; all mutations go through here (API and admin alike)."""

    def __init__(self) -> None:
        self.calendars: dict[str, GCalendar] = {}
        self.seq = 0
        self.order = 0
        self.epoch = secrets.token_hex(4)
        self.settings = GoogleSettings()
        self.on_change: Callable[[str], None] | None = None  # called with the calendar id of each change

    # --- calendars ----------------------------------------------------------------------------

    def add_calendar(
        self,
        account: Account,
        calendar_id: str | None = None,
        name: str | None = None,
        time_zone: str = "UTC",
        primary: bool = False,
    ) -> GCalendar:
        """Create a calendar for an account (the primary one is named after the account's email)."""
        cal_id = calendar_id or (account.email if primary else f"{fields.new_id()}@group.calendar.google.com")
        if cal_id in self.calendars:
            raise ValueError(f"calendar {cal_id!r} exists")
        cal = GCalendar(cal_id, account, name or account.email, time_zone, primary, updated=fmt_utc(_now()))
        self.calendars[cal_id] = cal
        return cal

    def calendar(self, account: Account, calendar_id: str) -> GCalendar:
        """The account's calendar by id or `primary`; 404 notFound otherwise."""
        if calendar_id == "primary":
            for cal in self.calendars.values():
                if cal.owner.id == account.id and cal.primary:
                    return cal
            raise err.not_found()
        found = self.calendars.get(calendar_id)
        if found is None or found.owner.id != account.id:
            raise err.not_found()
        return found

    def calendar_by_id(self, calendar_id: str) -> GCalendar:
        """A calendar by id regardless of owner (admin use)."""
        cal = self.calendars.get(calendar_id)
        if cal is None:
            raise err.not_found()
        return cal

    def invalidate_cursors(self, calendar_id: str) -> bool:
        """Make every sync token issued so far for the calendar answer 410."""
        cal = self.calendars.get(calendar_id)
        if cal is None:
            return False
        self.seq += 1
        cal.min_seq = self.seq
        return True

    # --- reads --------------------------------------------------------------------------------

    def get(self, cal: GCalendar, event_id: str) -> dict[str, Any]:
        """An event (cancelled ones too) or a not-yet-stored instance of a recurring event."""
        stored = cal.events.get(event_id)
        if stored is not None:
            return stored.body
        virtual = self._virtual(cal, event_id)
        if virtual is None:
            raise err.not_found()
        master, original = virtual
        return instance_body(master.body, original)

    def _virtual(self, cal: GCalendar, event_id: str) -> tuple[Stored, datetime | date] | None:
        parts = split_instance_id(event_id)
        if parts is None:
            return None
        master = cal.events.get(parts[0])
        if master is None or not master.body.get("recurrence"):
            return None
        suffix = parts[1]
        all_day = is_all_day(master.body["start"])
        if all_day != (len(suffix) == 8):
            return None
        if all_day:
            original: datetime | date = datetime.strptime(suffix, "%Y%m%d").date()
        else:
            instant = datetime.strptime(suffix, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            original = instant.astimezone(zone(master.body["start"].get("timeZone")))
        if not is_occurrence(master.body, original, zone(cal.time_zone)):
            return None
        return master, original

    # --- writes -------------------------------------------------------------------------------

    def insert(
        self,
        cal: GCalendar,
        body: dict[str, Any],
        *,
        conference: bool = True,
        attachments: bool = True,
        raw: bool = False,
    ) -> dict[str, Any]:
        """Insert an event; `raw` (seeding) keeps ids, timestamps and exception fields as given."""
        body = copy.deepcopy(body)
        event_id = body.get("id") or fields.new_id()
        if not raw and not _ID_RE.match(event_id):
            raise err.GoogleError(400, "invalid", "Invalid resource id value.")
        if event_id in cal.events:
            raise err.duplicate()
        if not raw:
            for key in ("recurringEventId", "originalStartTime", "etag", "kind", "htmlLink", "hangoutLink"):
                body.pop(key, None)
            fields.check_insert_type(body)
        if not conference:
            body.pop("conferenceData", None)
        if not attachments:
            body.pop("attachments", None)
        now = fmt_utc(_now())
        event: dict[str, Any] = {"kind": "calendar#event", "etag": "", "id": event_id, "status": "confirmed"}
        event.update(body)
        event["id"] = event_id
        event["htmlLink"] = fields.html_link(event_id, cal.id)
        event["created"] = body.get("created") if raw and body.get("created") else now
        event["updated"] = body.get("updated") if raw and body.get("updated") else now
        event.setdefault("creator", {"email": cal.owner.email, "self": True})
        event.setdefault("organizer", {"email": cal.owner.email, "self": True})
        event.setdefault("iCalUID", f"{event_id}@google.com")
        event.setdefault("sequence", 0)
        event.setdefault("reminders", {"useDefault": True})
        event.setdefault("eventType", "default")
        self._finish(cal, event, conference, strict=not raw)
        self.order += 1
        stored = Stored(event, order=self.order)
        cal.events[event_id] = stored
        self._touch(cal, stored, bump_updated=not (raw and body.get("updated")))
        return stored.body

    def patch(
        self,
        cal: GCalendar,
        event_id: str,
        body: dict[str, Any],
        *,
        conference: bool = True,
        attachments: bool = True,
        if_match: str | None = None,
    ) -> dict[str, Any]:
        """Patch semantics: given fields replace, nested objects merge, arrays replace whole."""
        stored = self._writable(cal, event_id, if_match)
        new = copy.deepcopy(stored.body)
        for key, value in fields.writable_fields(body, conference, attachments).items():
            if value is None:
                new.pop(key, None)
            elif isinstance(value, dict) and isinstance(new.get(key), dict) and key not in ("start", "end"):
                new[key] = fields.merge(new[key], value)
            else:
                new[key] = copy.deepcopy(value)
        return self._commit(cal, stored, new, conference, "sequence" in body)

    def update(
        self,
        cal: GCalendar,
        event_id: str,
        body: dict[str, Any],
        *,
        conference: bool = True,
        attachments: bool = True,
        if_match: str | None = None,
    ) -> dict[str, Any]:
        """PUT: full replacement; server fields stay, conference data/attachments only with their flags."""
        stored = self._writable(cal, event_id, if_match)
        old = stored.body
        new: dict[str, Any] = {
            k: copy.deepcopy(old[k]) for k in (*fields.READ_ONLY, "eventType", "organizer") if k in old
        }
        new["status"] = "confirmed"
        new.update(copy.deepcopy(fields.writable_fields(body, conference, attachments)))
        new.setdefault("reminders", {"useDefault": True})
        new.setdefault("sequence", old.get("sequence", 0))
        if not conference and "conferenceData" in old:
            new["conferenceData"] = copy.deepcopy(old["conferenceData"])
        if not attachments and "attachments" in old:
            new["attachments"] = copy.deepcopy(old["attachments"])
        return self._commit(
            cal, stored, {k: v for k, v in new.items() if v is not None}, conference, "sequence" in body
        )

    def delete(self, cal: GCalendar, event_id: str, if_match: str | None = None) -> None:
        """Cancel an event (a master cancels its whole series); 410 when already deleted."""
        stored = cal.events.get(event_id)
        if stored is None:
            virtual = self._virtual(cal, event_id)
            if virtual is None:
                raise err.not_found()
            if virtual[0].body.get("status") == "cancelled":
                raise err.deleted()
            stored = self._materialize(cal, *virtual)
        if stored.body.get("status") == "cancelled":
            raise err.deleted()
        _check_etag(stored, if_match)
        stored.body["status"] = "cancelled"
        self._touch(cal, stored)
        if stored.body.get("recurrence"):
            for other in list(cal.events.values()):
                if other.body.get("recurringEventId") == event_id and other.body.get("status") != "cancelled":
                    other.body["status"] = "cancelled"
                    self._touch(cal, other)

    # --- internals ----------------------------------------------------------------------------

    def _writable(self, cal: GCalendar, event_id: str, if_match: str | None) -> Stored:
        stored = cal.events.get(event_id)
        if stored is None:
            virtual = self._virtual(cal, event_id)
            if virtual is None:
                raise err.not_found()
            _check_etag(virtual[0], if_match)
            return self._materialize(cal, *virtual)
        _check_etag(stored, if_match)
        return stored

    def _materialize(self, cal: GCalendar, master: Stored, original: datetime | date) -> Stored:
        """Store an instance as an exception (as Google does on the first instance write)."""
        body = copy.deepcopy(instance_body(master.body, original))
        self.order += 1
        stored = Stored(body, order=self.order)
        cal.events[body["id"]] = stored
        return stored

    def _commit(
        self, cal: GCalendar, stored: Stored, new: dict[str, Any], conference: bool, sequence_given: bool
    ) -> dict[str, Any]:
        old = stored.body
        self._finish(cal, new, conference, strict=True)
        fields.check_write_type(old, new)
        timing = ("start", "end", "recurrence")
        if not sequence_given and any(old.get(k) != new.get(k) for k in timing):
            new["sequence"] = int(old.get("sequence", 0)) + 1
        ignore = ("reminders", "etag", "updated")
        only_reminders = old.get("reminders") != new.get("reminders") and fields.without(old, ignore) == fields.without(
            new, ignore
        )
        stored.body = new
        self._touch(cal, stored, bump_updated=not only_reminders)
        return stored.body

    def _finish(self, cal: GCalendar, event: dict[str, Any], conference: bool, strict: bool) -> None:
        """Validate times/recurrence and derive attendee `self`, organizer `self`, hangoutLink."""
        fields.validate_times(event, strict)
        owner = cal.owner.email.lower()
        for person in ("creator", "organizer"):
            who = event.get(person)
            if isinstance(who, dict) and who.get("email"):
                who["self"] = who["email"].lower() == owner
        organizer = (event.get("organizer") or {}).get("email", "").lower()
        for attendee in event.get("attendees") or []:
            if not isinstance(attendee, dict) or not attendee.get("email"):
                raise err.GoogleError(400, "required", "Missing attendee email.")
            attendee.setdefault("responseStatus", "needsAction")
            if attendee["email"].lower() == owner:
                attendee["self"] = True
            if attendee["email"].lower() == organizer:
                attendee["organizer"] = True
        if conference and isinstance(event.get("conferenceData"), dict):
            fields.complete_conference(event["conferenceData"])
        fields.set_hangout_link(event)

    def _touch(self, cal: GCalendar, stored: Stored, bump_updated: bool = True) -> None:
        self.seq += 1
        stored.seq = self.seq
        now = _now()
        stored.body["etag"] = f'"{int(now.timestamp() * 1000):013d}{self.seq % 1000:03d}"'
        if bump_updated:
            stored.body["updated"] = fmt_utc(now)
        cal.updated = fmt_utc(now)
        if self.on_change is not None:
            self.on_change(cal.id)


def instance_body(master: dict[str, Any], original: datetime | date) -> dict[str, Any]:
    """One generated instance of a recurring master (no `recurrence`; `originalStartTime` set)."""
    body = {k: v for k, v in master.items() if k != "recurrence"}  # shallow: callers copy before mutating
    body["id"] = f"{master['id']}_{instance_suffix(original)}"
    body["recurringEventId"] = master["id"]
    start, end = edt_value(master["start"]), edt_value(master["end"])
    duration = end - start  # type: ignore[operator]
    if isinstance(original, datetime):
        tz_name = master["start"].get("timeZone")
        slot = {"dateTime": fmt_in_zone(original, original.tzinfo or UTC)}
        if tz_name:
            slot["timeZone"] = tz_name
        finish = original + duration
        end_slot = {"dateTime": fmt_in_zone(finish, finish.tzinfo or UTC)}
        if master["end"].get("timeZone"):
            end_slot["timeZone"] = master["end"]["timeZone"]
        body["start"], body["end"], body["originalStartTime"] = slot, end_slot, dict(slot)
    else:
        body["start"] = {"date": original.isoformat()}
        body["end"] = {"date": (original + duration).isoformat()}
        body["originalStartTime"] = {"date": original.isoformat()}
    return body


def _check_etag(stored: Stored, if_match: str | None) -> None:
    if if_match and if_match.strip() != "*" and if_match.strip() != stored.body.get("etag"):
        raise err.condition_not_met()


def _now() -> datetime:
    return datetime.now(UTC)

"""In-memory mailbox state of the Graph emulator: calendars, items, series expansion and writes.

Follows Graph's event resource and event write documentation."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from autosync.emulator.core import Account
from autosync.emulator.graph_errors import GraphError, bad_request, not_found
from autosync.emulator.graph_model import (
    Calendar,
    StoredEvent,
    event_id,
    ical_uid,
    new_calendar_id,
    new_change_key,
    new_key,
    occurrence_id,
    parse_occurrence_id,
)
from autosync.emulator.graph_recurrence import (
    first_occurrence,
    is_occurrence,
    occurrences_between,
    series_start,
)
from autosync.emulator.graph_time import (
    epoch,
    floating_as_utc,
    from_epoch,
    overlaps,
    resolve_zone,
    to_utc,
    utcnow,
)
from autosync.emulator.graph_write import (
    Times,
    check_keys,
    new_props,
    recurrence_of,
    resolve_times,
    shape_props,
)

_PRECONDITION = (
    "The send or update operation could not be performed because the change key passed in the "
    "request does not match the current change key for the item."
)


@dataclass
class Slot:
    """One instance of a series: a plain occurrence (``exception`` None) or an exception."""

    id: str
    master: StoredEvent
    original: datetime  # aware UTC (all-day: the floating date read as UTC)
    start: datetime
    end: datetime
    exception: StoredEvent | None = None


def instant(value: datetime, all_day: bool) -> datetime:
    """A stored time as an aware UTC instant (floating all-day dates read as UTC)."""
    return floating_as_utc(value) if all_day else value


class Store:
    """Calendars and items of every mailbox; callers hold the GraphState lock."""

    def __init__(self) -> None:
        self.calendars: dict[str, Calendar] = {}
        self.events: dict[str, StoredEvent] = {}
        self.by_calendar: dict[str, list[str]] = {}
        self.by_key: dict[str, str] = {}
        self.transactions: dict[str, str] = {}  # "account|transactionId" -> item id
        self.seq = 0
        # (account id, item id, change key, "created" | "updated" | "deleted") after every item change
        self.on_change: Callable[[str, str, str, str], None] | None = None
        self._cache: dict[tuple[str, int, datetime, datetime], list[tuple[datetime, datetime, datetime]]] = {}

    # calendars -----------------------------------------------------------------------------------
    def add_calendar(self, account: Account, calendar_id: str | None, name: str) -> str:
        """Register a calendar; the mailbox's first calendar is its primary one."""
        cal_id = calendar_id or new_calendar_id()
        if cal_id not in self.calendars:
            primary = not any(c.account_id == account.id for c in self.calendars.values())
            self.calendars[cal_id] = Calendar(
                cal_id,
                account.id,
                account.email,
                account.display_name or account.email.split("@")[0],
                name,
                primary,
            )
            self.by_calendar[cal_id] = []
        return cal_id

    def primary(self, account: Account) -> Calendar:
        """The mailbox's default calendar (created on first use)."""
        for cal in self.calendars.values():
            if cal.account_id == account.id and cal.primary:
                return cal
        return self.calendars[self.add_calendar(account, None, "Calendar")]

    def calendar_of(self, account: Account | None, cal_id: str) -> Calendar:
        """A calendar the account owns or has shared with it (any calendar for admin calls); 404 otherwise."""
        cal = self.calendars.get(cal_id)
        if cal is None or (account is not None and not cal.open_to(account.id)):
            raise not_found()
        return cal

    # lookup --------------------------------------------------------------------------------------
    def resolve(self, account: Account | None, item_id: str, calendar: Calendar | None = None) -> StoredEvent | Slot:
        """A live stored item or a plain occurrence; 404 for unknown, deleted or cancelled ids.

        Without ``calendar`` (``/me/events/{id}``) only the account's own mailbox counts: like Graph, a
        shared calendar's items answer 404 there and need ``/me/calendars/{id}/events/{id}``.
        """
        stored = self.events.get(item_id)
        found: StoredEvent | Slot | None = self.occurrence(item_id) if stored is None else stored
        if stored is not None and stored.deleted:
            found = None
        cal_id = (
            found.calendar_id if isinstance(found, StoredEvent) else found.master.calendar_id if found else ""
        )
        if found is None or (calendar is not None and calendar.id != cal_id):
            raise not_found()
        if account is not None and not (
            calendar.open_to(account.id) if calendar else self.calendars[cal_id].account_id == account.id
        ):
            raise not_found()
        return found

    def occurrence(self, item_id: str) -> Slot | None:
        parsed = parse_occurrence_id(item_id)
        master = self.events.get(self.by_key.get(parsed[0], "")) if parsed else None
        if parsed is None or master is None or master.deleted or master.recurrence is None:
            return None
        if parsed[1] in master.cancelled:
            return None
        original = from_epoch(parsed[1])
        zone = resolve_zone(master.recurrence["range"]["recurrenceTimeZone"])
        local = (
            original.replace(tzinfo=None)
            if master.all_day
            else original.astimezone(zone).replace(tzinfo=None)
        )
        if not is_occurrence(master.recurrence, self._dtstart(master), local):
            return None
        return self.slot_at(master, item_id, parsed[1])

    @staticmethod
    def slot_at(master: StoredEvent, item_id: str, original_epoch: int) -> Slot:
        """The plain occurrence of ``master`` at a slot known to be one of its occurrences."""
        original = from_epoch(original_epoch)
        start = original.replace(tzinfo=None) if master.all_day else original
        return Slot(item_id, master, original, start, start + (master.end - master.start))

    # series expansion ----------------------------------------------------------------------------
    def _dtstart(self, master: StoredEvent) -> datetime:
        assert master.recurrence is not None
        if master.all_day:
            return series_start(master.recurrence, time(0))
        zone = resolve_zone(master.recurrence["range"]["recurrenceTimeZone"])
        return series_start(master.recurrence, master.start.astimezone(zone).time())

    def _expand(
        self, master: StoredEvent, low: datetime, high: datetime
    ) -> list[tuple[datetime, datetime, datetime]]:
        """(original, start, end) of every slot overlapping [low, high), cached per master version."""
        cache_key = (master.id, master.seq, low, high)
        if cache_key in self._cache:
            return self._cache[cache_key]
        assert master.recurrence is not None
        zone = resolve_zone(master.recurrence["range"]["recurrenceTimeZone"])
        length = master.end - master.start
        margin = length + timedelta(days=2)
        to_local = (
            (lambda v: v.replace(tzinfo=None))
            if master.all_day
            else (lambda v: v.astimezone(zone).replace(tzinfo=None))
        )
        out = []
        for local in occurrences_between(
            master.recurrence, self._dtstart(master), to_local(low) - margin, to_local(high) + margin
        ):
            start = local if master.all_day else to_utc(local, zone)
            end = start + length
            if overlaps(instant(start, master.all_day), instant(end, master.all_day), low, high):
                out.append((instant(start, master.all_day), start, end))
        if len(self._cache) > 20000:
            self._cache.clear()
        self._cache[cache_key] = out
        return out

    def slots(self, master: StoredEvent, low: datetime, high: datetime) -> list[Slot]:
        """Live occurrences and exceptions of a series overlapping [low, high), by start."""
        exceptions = {
            epoch(e.original_start): e
            for e in (self.events[i] for i in master.exception_ids)
            if not e.deleted and e.original_start is not None
        }
        cancelled = set(master.cancelled)
        out = []
        for orig, start, end in self._expand(master, low, high):
            stamp = epoch(orig)
            if stamp not in cancelled and stamp not in exceptions:
                out.append(Slot(occurrence_id(master.key, stamp), master, orig, start, end))
        for exc in exceptions.values():
            if overlaps(instant(exc.start, exc.all_day), instant(exc.end, exc.all_day), low, high):
                assert exc.original_start is not None
                out.append(Slot(exc.id, master, exc.original_start, exc.start, exc.end, exc))
        out.sort(key=lambda s: instant(s.start, master.all_day))
        return out

    def live_items(self, cal_id: str) -> list[StoredEvent]:
        """Live single instances and series masters of a calendar, in creation order."""
        items = (self.events[i] for i in self.by_calendar.get(cal_id, []))
        return [e for e in items if not e.deleted and e.kind != "exception"]

    # writes --------------------------------------------------------------------------------------
    def _bump(self, ev: StoredEvent, now: datetime, *, quiet: bool = False) -> None:
        """Record a change of an item (the one place items change) and report it to ``on_change``.

        ``quiet``: a new change key and a notification, but no new version for delta rounds.
        """
        change = "deleted" if ev.deleted else "created" if ev.seq == 0 and ev.kind != "exception" else "updated"
        if not quiet:
            self.seq += 1
            ev.seq = self.seq
        ev.change_key, ev.modified = new_change_key(), now
        if self.on_change is not None:
            self.on_change(self.calendars[ev.calendar_id].account_id, ev.id, ev.change_key, change)

    def find_transaction(self, cal: Calendar, body: dict[str, Any]) -> StoredEvent | None:
        """The live item an earlier POST with the same transactionId created (provider rule 31)."""
        txid = body.get("transactionId")
        found = self.events.get(self.transactions.get(f"{cal.account_id}|{txid}", "")) if txid else None
        return found if found is not None and not found.deleted else None

    def create(self, cal: Calendar, body: Any, extra: dict[str, Any] | None = None) -> StoredEvent:
        """Validate a POST body and store the new item."""
        if not isinstance(body, dict):
            raise bad_request("The request body must be a JSON event object.")
        check_keys(body)
        now = utcnow()
        times = resolve_times(body, None)
        recurrence = recurrence_of(body, times)
        props = new_props(body, now)
        attachments = props.pop("attachments", [])
        key = new_key()
        ev = StoredEvent(
            event_id(key),
            key,
            cal.id,
            "seriesMaster" if recurrence else "singleInstance",
            props,
            times.start,
            times.end,
            times.all_day,
            times.start_zone,
            times.end_zone,
            ical_uid(key, now),
            now,
            now,
            new_change_key(),
            0,
            recurrence,
            attachments=attachments,
        )
        if recurrence:
            self._align_master(ev)
        self._bump(ev, now)
        self.events[ev.id] = ev
        self.by_key[key] = ev.id
        self.by_calendar[cal.id].append(ev.id)
        if props.get("transactionId"):
            self.transactions[f"{cal.account_id}|{props['transactionId']}"] = ev.id
        return ev

    def _align_master(self, master: StoredEvent) -> None:
        """A master's start/end are its first occurrence's; 400 when the range yields none."""
        assert master.recurrence is not None
        first = first_occurrence(master.recurrence, self._dtstart(master))
        if first is None:
            raise bad_request(
                "The recurrence pattern and range produce no occurrences.", "ErrorInvalidRequest"
            )
        length = master.end - master.start
        zone = resolve_zone(master.recurrence["range"]["recurrenceTimeZone"])
        master.start = first if master.all_day else to_utc(first, zone)
        master.end = master.start + length

    @staticmethod
    def check_if_match(target: StoredEvent | Slot, if_match: str | None) -> None:
        """412 ErrorIrresolvableConflict when If-Match names another change key."""
        if not if_match or if_match.strip() == "*":
            return
        current = target.change_key if isinstance(target, StoredEvent) else target.master.change_key
        given = if_match.strip()
        given = given[2:] if given.startswith("W/") else given
        if given.strip('"') != current:
            raise GraphError(412, "ErrorIrresolvableConflict", _PRECONDITION)

    def _materialize(self, slot: Slot, now: datetime) -> StoredEvent:
        """Turn a plain occurrence into an exception item with the same id."""
        master = slot.master
        exc = StoredEvent(
            slot.id,
            master.key,
            master.calendar_id,
            "exception",
            copy.deepcopy(master.props),
            slot.start,
            slot.end,
            master.all_day,
            master.start_zone,
            master.end_zone,
            master.ical_uid,
            now,
            now,
            new_change_key(),
            0,
            None,
            master.id,
            slot.original,
            attachments=copy.deepcopy(master.attachments),
        )
        exc.props.pop("transactionId", None)
        if exc.id in self.events:  # an exception deleted earlier is replaced
            master.exception_ids.remove(exc.id)
        else:
            self.by_calendar[master.calendar_id].append(exc.id)
        self.events[exc.id] = exc
        master.exception_ids.append(exc.id)
        return exc

    def patch(self, target: StoredEvent | Slot, body: Any) -> StoredEvent:
        """Apply a PATCH: only supplied properties change; an occurrence becomes an exception."""
        if not isinstance(body, dict):
            raise bad_request("The request body must be a JSON object.")
        check_keys(body)
        now = utcnow()
        if "recurrence" in body and (isinstance(target, Slot) or target.kind == "exception"):
            raise bad_request(
                "The recurrence of an occurrence or exception cannot be set.", "ErrorInvalidRequest"
            )
        ev = self._materialize(target, now) if isinstance(target, Slot) else target
        times_changed = any(k in body for k in ("start", "end", "isAllDay"))
        if times_changed:
            times = resolve_times(body, Times(ev.start, ev.end, ev.all_day, ev.start_zone, ev.end_zone))
            ev.start, ev.end, ev.all_day = times.start, times.end, times.all_day
            ev.start_zone, ev.end_zone = times.start_zone, times.end_zone
        old_provider = ev.props.get("onlineMeetingProvider")
        changes = shape_props(body, now)
        if "onlineMeetingProvider" in changes and old_provider not in (
            "unknown",
            changes["onlineMeetingProvider"],
        ):
            raise bad_request("onlineMeetingProvider cannot be changed once set.", "ErrorInvalidRequest")
        if (
            changes.get("isOnlineMeeting")
            and "onlineMeetingProvider" not in changes
            and old_provider == "unknown"
        ):
            changes["onlineMeetingProvider"] = "teamsForBusiness"
        if "attachments" in changes:
            ev.attachments = changes.pop("attachments")
        ev.props.update(changes)
        if ev.kind in ("singleInstance", "seriesMaster") and (
            "recurrence" in body or (times_changed and ev.recurrence)
        ):
            self._reshape_series(ev, body, now)
        self._bump(ev, now)
        return ev

    def _reshape_series(self, ev: StoredEvent, body: dict[str, Any], now: datetime) -> None:
        """New recurrence or series time: exceptions and cancellations are dropped, as Outlook does."""
        times = Times(ev.start, ev.end, ev.all_day, ev.start_zone, ev.end_zone)
        if "recurrence" in body:
            if body["recurrence"] is None:
                if ev.kind == "seriesMaster":
                    raise bad_request(
                        "A series master cannot be turned into a single event.", "ErrorInvalidRequest"
                    )
                return
            recurrence = recurrence_of(body, times)
        else:
            assert ev.recurrence is not None
            recurrence = copy.deepcopy(ev.recurrence)
            zone = resolve_zone(recurrence["range"]["recurrenceTimeZone"])
            local = ev.start if ev.all_day else ev.start.astimezone(zone)
            recurrence["range"]["startDate"] = local.date().isoformat()
        ev.recurrence, ev.kind = recurrence, "seriesMaster"
        for exc_id in ev.exception_ids:
            exc = self.events[exc_id]
            if not exc.deleted:
                exc.deleted = True
                self._bump(exc, now)
        ev.exception_ids, ev.cancelled = [], []
        self._align_master(ev)

    def delete(self, target: StoredEvent | Slot, *, quiet_occurrence: bool = False) -> None:
        """Delete an item; for an occurrence or exception only that instance is cancelled.

        ``quiet_occurrence``: a plain occurrence's deletion leaves delta rounds unchanged (DeltaConfig).
        """
        now = utcnow()
        if isinstance(target, Slot):
            target.master.cancelled.append(epoch(target.original))
            self._bump(target.master, now, quiet=quiet_occurrence and target.exception is None)
            return
        target.deleted = True
        self._bump(target, now)
        if target.kind == "seriesMaster":
            for exc_id in target.exception_ids:
                exc = self.events[exc_id]
                if not exc.deleted:
                    exc.deleted = True
                    self._bump(exc, now)
        elif target.kind == "exception" and target.original_start is not None:
            master = self.events[target.series_master_id or ""]
            master.cancelled.append(epoch(target.original_start))
            self._bump(master, now)

    def master_of(self, ev: StoredEvent) -> StoredEvent | None:
        """The series master of an exception."""
        return self.events.get(ev.series_master_id or "")

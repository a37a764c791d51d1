"""Demo edits on the provider side: what people do in Google Calendar and Outlook, via the emulator admin API."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import requests

from autosync.emulator.client import EmulatorClient
from autosync.normalize.google import event_from_google
from autosync.services.series import expected_slots

TITLES = ("Coffee with Sam", "Budget review", "Sprint planning", "Doctor", "School run", "Yoga", "Flight",
          "Parents evening", "Quarterly sync", "Haircut", "Book club", "Hackathon")
GUESTS = ("ana@example.org", "ben@example.net", "chloe@example.com", "dev@example.org")
ZONES = (("Europe/Berlin", "W. Europe Standard Time"), ("America/New_York", "Eastern Standard Time"),
         ("Asia/Tokyo", "Tokyo Standard Time"), ("UTC", "UTC"), ("Australia/Sydney", "AUS Eastern Standard Time"))
WIRE = "%Y-%m-%dT%H:%M:%S"


def _q(value: str) -> str:
    return quote(value, safe="")


def new_name(rng: random.Random, cycle: int) -> str:
    """A fresh event title tagged with the cycle that made it."""
    return f"{rng.choice(TITLES)} (c{cycle})"


def renamed(old: str, cycle: int) -> str:
    """A new title for an existing event: its base title plus a version tag."""
    return f"{(old or 'Untitled').split(' ~ ')[0]} ~ v{cycle}"


def _local_start(rng: random.Random, zone_name: str) -> datetime:
    day = datetime.now(UTC).date() + timedelta(days=rng.randint(1, 60))
    return datetime(day.year, day.month, day.day, rng.randint(8, 18), rng.choice((0, 30)), tzinfo=ZoneInfo(zone_name))


class ProviderEdits:
    """Creates, renames, moves and deletes events and occurrences on one provider calendar."""

    def __init__(self, client: EmulatorClient, rng: random.Random, cycle: int, touched: set[str]) -> None:
        self.client = client
        self.rng = rng
        self.cycle = cycle
        self.touched = touched

    def run(self, provider: str, calendar: str, label: str) -> str:
        """One random edit on the calendar; returns a line saying what was done."""
        ops: dict[str, Callable[[str], str | None]] = (
            {"create": self.g_create, "rename": self.g_rename, "move": self.g_move, "delete": self.g_delete,
             "occurrence": self.g_occurrence} if provider == "google" else
            {"create": self.o_create, "rename": self.o_rename, "move": self.o_move, "delete": self.o_delete,
             "occurrence": self.o_occurrence})
        kind = self.rng.choices(list(ops), weights=(3, 3, 2, 2, 2))[0]
        try:
            done = ops[kind](calendar) or ops["create"](calendar)
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else "?"
            done = f"{kind} refused by the emulator ({status})"
        return f"provider {label}: {done}"

    def _pick(self, items: list[dict[str, Any]]) -> dict[str, Any] | None:
        free = [i for i in items if i["id"] not in self.touched]
        if not free:
            return None
        chosen = self.rng.choice(free)
        self.touched.add(chosen["id"])
        return chosen

    # --- Google -------------------------------------------------------------------------------

    def _g_live(self, calendar: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(singles, series masters) that are live, in a stable order."""
        items = [i for i in self.client.google_list(calendar) if i.get("status") != "cancelled"]
        items.sort(key=lambda i: (str(i.get("start")), str(i.get("summary")), i["id"]))
        singles = [i for i in items if not i.get("recurrence") and not i.get("recurringEventId")]
        return singles, [i for i in items if i.get("recurrence")]

    def g_create(self, calendar: str) -> str:
        """Insert an event (timed in a random zone, sometimes all-day or weekly)."""
        name, roll = new_name(self.rng, self.cycle), self.rng.random()
        body: dict[str, Any] = {"summary": name}
        if roll < 0.2:
            first = datetime.now(UTC).date() + timedelta(days=self.rng.randint(1, 60))
            body |= {"start": {"date": first.isoformat()},
                     "end": {"date": (first + timedelta(days=self.rng.randint(1, 3))).isoformat()}}
        else:
            iana, _ = self.rng.choice(ZONES)
            start = _local_start(self.rng, iana)
            end = start + timedelta(minutes=self.rng.choice((30, 60, 90)))
            body |= {"start": {"dateTime": start.isoformat(), "timeZone": iana},
                     "end": {"dateTime": end.isoformat(), "timeZone": iana}}
            if roll > 0.85:
                body["recurrence"] = [f"RRULE:FREQ=WEEKLY;COUNT={self.rng.randint(4, 8)}"]
        if self.rng.random() < 0.4:
            body["attendees"] = [{"email": g} for g in self.rng.sample(GUESTS, 2)]
        created = self.client.google_insert(calendar, body)
        self.touched.add(created["id"])
        return f"created {'series ' if 'recurrence' in body else ''}'{name}' ({_when(body['start'])})"

    def g_rename(self, calendar: str) -> str | None:
        """Rename a single event (or the first series)."""
        singles, masters = self._g_live(calendar)
        item = self._pick(singles + masters[:1])
        if item is None:
            return None
        name = renamed(item.get("summary", ""), self.cycle)
        self.client.google_patch(calendar, item["id"], {"summary": name})
        return f"renamed '{item.get('summary')}' -> '{name}'"

    def g_move(self, calendar: str) -> str | None:
        """Move a single event by an hour or two, a day or a week."""
        item = self._pick(self._g_live(calendar)[0])
        if item is None:
            return None
        shift = _shift(self.rng, "date" in item["start"])
        patch = {"start": _g_shifted(item["start"], shift), "end": _g_shifted(item["end"], shift)}
        self.client.google_patch(calendar, item["id"], patch)
        return f"moved '{item.get('summary')}' by {_span(shift)}"

    def g_delete(self, calendar: str) -> str | None:
        """Delete a single event."""
        item = self._pick(self._g_live(calendar)[0])
        if item is None:
            return None
        self.client.google_delete(calendar, item["id"])
        return f"deleted '{item.get('summary')}'"

    def g_occurrence(self, calendar: str) -> str | None:
        """Move or cancel one future occurrence of a series (it becomes an exception)."""
        items = self.client.google_list(calendar)
        taken = {i["id"] for i in items}
        for master in self._g_live(calendar)[1]:
            if master["id"] in self.touched:
                continue
            # EXDATE lines are left out (series.expected_slots cannot read EXDATE;TZID); an excluded
            # slot is caught below by the emulator's 404.
            event = replace(event_from_google(master), recurrence=tuple(
                line for line in master["recurrence"] if line.startswith("RRULE")))
            now = datetime.now(UTC)
            slots = expected_slots(event, (now + timedelta(days=1), now + timedelta(days=90)))
            ids = [f"{master['id']}_{_stamp(s)}" for s in slots]
            free = [i for i in ids if i not in taken]
            if not free:
                continue
            instance = self.rng.choice(free[:6])
            try:
                got = self.client.google_get(calendar, instance)
            except requests.HTTPError:
                continue  # an EXDATE'd slot: not an occurrence after all
            self.touched.update({master["id"], instance})
            if self.rng.random() < 0.5:
                self.client.google_delete(calendar, instance)
                return f"cancelled one occurrence of '{master.get('summary')}'"
            shift = _shift(self.rng, "date" in got["start"])
            self.client.google_patch(calendar, instance, {
                "summary": f"{master.get('summary')} (moved)", "start": _g_shifted(got["start"], shift),
                "end": _g_shifted(got["end"], shift)})
            return f"moved one occurrence of '{master.get('summary')}' by {_span(shift)}"
        return None

    # --- Outlook ------------------------------------------------------------------------------

    def _o_live(self, calendar: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        raw = self.client.outlook("GET", f"/calendars/{_q(calendar)}/events")["value"]
        items = [r for r in raw if not r["deleted"]]
        items.sort(key=lambda r: (r["start"], str(r["props"].get("subject")), r["id"]))
        return ([r for r in items if r["kind"] == "singleInstance"],
                [r for r in items if r["kind"] == "seriesMaster"])

    def o_create(self, calendar: str) -> str:
        """POST an event (timed in a Windows zone, sometimes all-day, often a Teams meeting)."""
        name, roll = new_name(self.rng, self.cycle), self.rng.random()
        body: dict[str, Any] = {"subject": name}
        if roll < 0.2:
            first = datetime.now(UTC).date() + timedelta(days=self.rng.randint(1, 60))
            after = first + timedelta(days=self.rng.randint(1, 3))
            body |= {"isAllDay": True, "start": {"dateTime": f"{first}T00:00:00", "timeZone": "UTC"},
                     "end": {"dateTime": f"{after}T00:00:00", "timeZone": "UTC"}}
        else:
            iana, windows = self.rng.choice(ZONES)
            start = _local_start(self.rng, iana)
            end = start + timedelta(minutes=self.rng.choice((30, 60, 90)))
            body |= {"start": {"dateTime": start.strftime(WIRE), "timeZone": windows},
                     "end": {"dateTime": end.strftime(WIRE), "timeZone": windows}}
        if self.rng.random() < 0.4:
            body["attendees"] = [{"emailAddress": {"address": g}, "type": "required"}
                                 for g in self.rng.sample(GUESTS, 2)]
            body |= {"isOnlineMeeting": True, "onlineMeetingProvider": "teamsForBusiness"}
        created = self.client.outlook("POST", f"/calendars/{_q(calendar)}/events", body)
        self.touched.add(created["id"])
        return f"created '{name}' ({body['start']['dateTime'][:16]} {body['start']['timeZone']})"

    def o_rename(self, calendar: str) -> str | None:
        """Rename a single event (or the first series)."""
        singles, masters = self._o_live(calendar)
        item = self._pick(singles + masters[:1])
        if item is None:
            return None
        old = item["props"].get("subject", "")
        name = renamed(old, self.cycle)
        self.client.outlook("PATCH", f"/events/{_q(item['id'])}", {"subject": name})
        return f"renamed '{old}' -> '{name}'"

    def o_move(self, calendar: str) -> str | None:
        """Move a single event (times written back in the zone Graph rendered them in)."""
        item = self._pick(self._o_live(calendar)[0])
        if item is None:
            return None
        shown = self.client.outlook("GET", f"/events/{_q(item['id'])}")
        shift = _shift(self.rng, bool(shown.get("isAllDay")))
        self.client.outlook("PATCH", f"/events/{_q(item['id'])}", {
            "start": _o_shifted(shown["start"], shift), "end": _o_shifted(shown["end"], shift)})
        return f"moved '{shown.get('subject')}' by {_span(shift)}"

    def o_delete(self, calendar: str) -> str | None:
        """Delete a single event."""
        item = self._pick(self._o_live(calendar)[0])
        if item is None:
            return None
        self.client.outlook("DELETE", f"/events/{_q(item['id'])}")
        return f"deleted '{item['props'].get('subject')}'"

    def o_occurrence(self, calendar: str) -> str | None:
        """Move or cancel one future plain occurrence of a series."""
        now = datetime.now(UTC)
        low, high = (now + timedelta(days=1)).strftime("%Y-%m-%dT00:00:00Z"), \
            (now + timedelta(days=90)).strftime("%Y-%m-%dT00:00:00Z")
        for master in self._o_live(calendar)[1]:
            if master["id"] in self.touched:
                continue
            shown = self.client.outlook(
                "GET", f"/events/{_q(master['id'])}/instances?startDateTime={low}&endDateTime={high}")["value"]
            plain = [s for s in shown if s.get("type") == "occurrence"][:6]
            if not plain:
                continue
            slot = self.rng.choice(plain)
            self.touched.update({master["id"], slot["id"]})
            subject = master["props"].get("subject")
            if self.rng.random() < 0.5:
                self.client.outlook("DELETE", f"/events/{_q(slot['id'])}")
                return f"cancelled one occurrence of '{subject}'"
            shift = _shift(self.rng, bool(slot.get("isAllDay")))
            self.client.outlook("PATCH", f"/events/{_q(slot['id'])}", {
                "subject": f"{subject} (moved)", "start": _o_shifted(slot["start"], shift),
                "end": _o_shifted(slot["end"], shift)})
            return f"moved one occurrence of '{subject}' by {_span(shift)}"
        return None


def _shift(rng: random.Random, all_day: bool) -> timedelta:
    if all_day:
        return timedelta(days=rng.choice((1, 2, 7)))
    return rng.choice((timedelta(hours=1), timedelta(hours=2), timedelta(days=1), timedelta(minutes=-30)))


def _span(shift: timedelta) -> str:
    if shift.days and not shift.seconds:
        return f"{shift.days}d"
    return f"{int(shift.total_seconds() // 60)}min"


def _g_shifted(value: dict[str, Any], shift: timedelta) -> dict[str, Any]:
    if value.get("date"):
        return {"date": (date.fromisoformat(value["date"]) + shift).isoformat()}
    moved = datetime.fromisoformat(value["dateTime"]) + shift
    return {"dateTime": moved.isoformat(), **({"timeZone": value["timeZone"]} if value.get("timeZone") else {})}


def _o_shifted(value: dict[str, Any], shift: timedelta) -> dict[str, str]:
    moved = datetime.fromisoformat(value["dateTime"][:19]) + shift
    return {"dateTime": moved.strftime(WIRE), "timeZone": value.get("timeZone") or "UTC"}


def _stamp(slot: datetime | date) -> str:
    return slot.strftime("%Y%m%dT%H%M%SZ") if isinstance(slot, datetime) else slot.strftime("%Y%m%d")


def _when(start: dict[str, Any]) -> str:
    if start.get("date"):
        return f"all-day {start['date']}"
    return f"{start['dateTime'][:16]} {start.get('timeZone', '')}".strip()

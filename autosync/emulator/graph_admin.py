"""Admin routes of the Graph emulator (``/_admin/outlook/...``): change calendars as a person in Outlook.

Seed format understood by ``import_events`` (and so by ``POST /calendars/{cal}/events`` and ``load()``):
a Graph event JSON body as accepted by ``POST /me/events``, plus optional keys

- ``"@emulator.cancelledDates": ["2024-05-20", ...]`` — cancel the occurrences whose original slot falls
  on these local dates (recurrence time zone);
- ``"@emulator.exceptions": [{"originalDate": "2024-05-27", "patch": {...PATCH body...}}, ...]`` — turn
  those occurrences into exceptions with the given changes.

``POST /calendars/{cal}/share {"account_id": ...}`` shares a calendar with another mailbox (a delegate);
``POST /config`` switches delta behaviour (see DeltaConfig in graph_delta).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import unquote

from autosync.emulator.core import Request, Response
from autosync.emulator.graph_delta import DELTA_MASTER_MODES
from autosync.emulator.graph_errors import GraphError, bad_request
from autosync.emulator.graph_model import Calendar, StoredEvent
from autosync.emulator.graph_odata import window
from autosync.emulator.graph_routes import Api
from autosync.emulator.graph_store import Slot
from autosync.emulator.graph_time import resolve_zone

CANCELLED_KEY = "@emulator.cancelledDates"
EXCEPTIONS_KEY = "@emulator.exceptions"


class Admin:
    """Admin handlers sharing the API's store."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.store = api.store

    def dispatch(self, req: Request) -> Response:
        """Run an admin request (paths after ``/_admin/outlook``)."""
        segs = [unquote(s) for s in req.path.strip("/").split("/")]
        key = (req.method, segs[0] if segs else "", len(segs))
        if segs[:1] == ["config"]:
            return self.config(req)
        if segs[:1] == ["calendars"] and len(segs) >= 2:
            cal = self.store.calendar_of(None, segs[1])
            if key == ("POST", "calendars", 3) and segs[2] == "events":
                ev = self.import_events(cal, [self.api.body(req)])[0]
                return Response(201, self.api.render(ev, self.api.ctx(req)))
            if key == ("POST", "calendars", 4) and segs[2:] == ["events", "import"]:
                events = (self.api.body(req) or {}).get("value", [])
                return Response(200, {"ids": [e.id for e in self.import_events(cal, events)]})
            if key == ("GET", "calendars", 3) and segs[2] == "events":
                raw = [self.store.events[i].to_dict() for i in self.store.by_calendar.get(cal.id, [])]
                return Response(200, {"value": raw})
            if key == ("POST", "calendars", 3) and segs[2] == "invalidate":
                self.api.delta.invalidate(cal.id)
                return Response(204)
            if key == ("POST", "calendars", 3) and segs[2] == "share":
                who = str((self.api.body(req) or {}).get("account_id") or "")
                if who and who != cal.account_id and who not in cal.shared_with:
                    cal.shared_with.append(who)  # as the owner shares it in Outlook
                return Response(200, {"id": cal.id, "sharedWith": list(cal.shared_with)})
        if segs[:1] == ["events"] and len(segs) >= 2:
            return self.event(req, segs)
        raise GraphError(404, "NotFound", f"No admin route {req.method} {req.path}")

    def event(self, req: Request, segs: list[str]) -> Response:
        """GET/PATCH/DELETE /events/{id} and GET /events/{id}/instances."""
        target = self.store.resolve(None, segs[1])
        ctx = self.api.ctx(req)
        if len(segs) == 3 and segs[2] == "instances" and req.method == "GET":
            if not isinstance(target, StoredEvent) or target.kind != "seriesMaster":
                raise bad_request("Not a series master.")
            low, high = window(req)
            return Response(
                200, {"value": [self.api.render(s, ctx) for s in self.store.slots(target, low, high)]}
            )
        if len(segs) != 2:
            raise GraphError(404, "NotFound", f"No admin route {req.method} {req.path}")
        if req.method == "GET":
            return Response(200, self.api.render(target, ctx))
        if req.method == "PATCH":
            return Response(200, self.api.render(self.store.patch(target, self.api.body(req)), ctx))
        if req.method == "DELETE":
            self.store.delete(target, quiet_occurrence=self.api.delta.config.silent_occurrence_deletes)
            return Response(204)
        raise GraphError(405, "MethodNotAllowed", req.method)

    def config(self, req: Request) -> Response:
        """GET/POST /config: signal_cancelled_occurrences, default_page_size, empty_first_page, ..."""
        conf = self.api.delta.config
        if req.method == "POST":
            body = self.api.body(req) or {}
            for name, value in body.items():
                if not hasattr(conf, name) or type(value) is not type(getattr(conf, name)):
                    raise bad_request(f"Unknown or mistyped config key {name!r}.")
                if name == "delta_masters" and value not in DELTA_MASTER_MODES:
                    raise bad_request(f"delta_masters must be one of {', '.join(DELTA_MASTER_MODES)}.")
                setattr(conf, name, value)
        return Response(200, dict(vars(conf)))

    # seeding -------------------------------------------------------------------------------------
    def import_events(self, cal: Calendar, events: list[Any]) -> list[StoredEvent]:
        """Create events from seed bodies (see module docstring for the ``@emulator.*`` keys)."""
        created = []
        for raw in events:
            if not isinstance(raw, dict):
                raise bad_request("Each seed event must be an object.")
            body = {k: v for k, v in raw.items() if not k.startswith("@emulator.")}
            ev = self.store.create(cal, body)
            for day in raw.get(CANCELLED_KEY, []):
                slot = self._slot_on(ev, date.fromisoformat(day))
                if slot is not None:
                    self.store.delete(slot)
            for exc in raw.get(EXCEPTIONS_KEY, []):
                slot = self._slot_on(ev, date.fromisoformat(exc["originalDate"]))
                if slot is not None:
                    self.store.patch(slot, exc.get("patch", {}))
            created.append(ev)
        return created

    def _slot_on(self, master: StoredEvent, day: date) -> Slot | None:
        """The plain occurrence whose original slot is on local ``day`` (recurrence zone)."""
        if master.recurrence is None:
            return None
        zone = resolve_zone(master.recurrence["range"]["recurrenceTimeZone"])
        low = datetime.combine(day - timedelta(days=2), time(0), UTC)
        for slot in self.store.slots(master, low, low + timedelta(days=5)):
            local = slot.original.replace(tzinfo=None) if master.all_day else slot.original.astimezone(zone)
            if slot.exception is None and local.date() == day:
                return slot
        return None

"""Microsoft Graph v1.0 calendar emulation: the GraphState the server core hands Graph requests to.

State lives in graph_store (items, series) and graph_delta (rounds, tokens); routes in graph_routes and
graph_admin; rendering in graph_render. This module is the thread-safe facade (https://learn.microsoft.com/graph/api/event-delta).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from autosync.emulator.core import Account, Request, Response
from autosync.emulator.graph_admin import Admin
from autosync.emulator.graph_delta import Delta
from autosync.emulator.graph_errors import GraphError, error_response
from autosync.emulator.graph_model import Calendar, StoredEvent
from autosync.emulator.graph_routes import PRIMARY, Api, parse_route
from autosync.emulator.graph_store import Store

__all__ = ["GraphState"]


class GraphState:
    """Every Graph mailbox of the emulator: calendars, events, delta tokens; safe across threads."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.store = Store()
        self.delta = Delta(self.store)
        self.api = Api(self.store, self.delta)
        self.admin = Admin(self.api)

    def handle(self, req: Request) -> Response:
        """Answer a Graph API request (path after ``/graph/v1.0``, account resolved by the server)."""
        with self.lock:
            try:
                return self.api.dispatch(req)
            except GraphError as err:
                return error_response(err, req.headers)

    def handle_admin(self, req: Request) -> Response:
        """Answer an admin request (path after ``/_admin/outlook``)."""
        with self.lock:
            try:
                return self.admin.dispatch(req)
            except GraphError as err:
                return error_response(err, req.headers)

    def listen(self, callback: Callable[[str, str, str, str], None] | None) -> None:
        """Report every item change to ``callback(account_id, item_id, change_key, change_type)``."""
        with self.lock:
            self.store.on_change = callback

    def endpoint_name(self, req: Request) -> str:
        """Endpoint label for counting and faults, e.g. ``graph.delta``."""
        return parse_route(req).name

    def calendar_id_for(self, req: Request) -> str | None:
        """The calendar an API request touches (None when it cannot be told)."""
        route = parse_route(req)
        with self.lock:
            if route.calendar == PRIMARY:
                return self._primary_id(req.account)
            if route.calendar is not None:
                return route.calendar if route.calendar in self.store.calendars else None
            if route.event_id is not None:
                try:
                    target = self.store.resolve(req.account, route.event_id)
                except GraphError:
                    return None
                return target.calendar_id if isinstance(target, StoredEvent) else target.master.calendar_id
        return None

    def _primary_id(self, account: Account | None) -> str | None:
        found = [
            c.id
            for c in self.store.calendars.values()
            if account is not None and c.account_id == account.id and c.primary
        ]
        return found[0] if found else None

    def add_calendar(self, account: Account, calendar_id: str | None, name: str) -> str:
        """Create a calendar for a mailbox (its first one is the primary); returns its id."""
        with self.lock:
            return self.store.add_calendar(account, calendar_id, name)

    def invalidate_cursors(self, calendar_id: str) -> None:
        """Make every delta/skip link of a calendar answer 410 SyncStateNotFound."""
        with self.lock:
            self.delta.invalidate(calendar_id)

    def import_events(self, calendar_id: str, events: list[dict[str, Any]]) -> list[str]:
        """Seed a calendar with Graph event bodies (``@emulator.*`` keys: see graph_admin); returns ids."""
        with self.lock:
            cal = self.store.calendar_of(None, calendar_id)
            return [e.id for e in self.admin.import_events(cal, events)]

    def dump(self) -> dict[str, Any]:
        """The whole state as JSON-safe data."""
        with self.lock:
            return {
                "kind": "graph-state",
                "version": 1,
                "seq": self.store.seq,
                "calendars": [vars(c) for c in self.store.calendars.values()],
                "events": [e.to_dict() for e in self.store.events.values()],
                "transactions": self.store.transactions,
                "delta": self.delta.dump(),
            }

    def load(self, data: dict[str, Any]) -> None:
        """Restore a dump(); a ``seed`` mapping {calendar_id: [seed events]} is imported afterwards."""
        with self.lock:
            if "events" in data:
                self._restore(data)
            for cal_id, events in data.get("seed", {}).items():
                self.admin.import_events(self.store.calendar_of(None, cal_id), events)

    def _restore(self, data: dict[str, Any]) -> None:
        store = Store()
        for cal in data.get("calendars", []):
            store.calendars[cal["id"]] = Calendar(**cal)
            store.by_calendar[cal["id"]] = []
        for raw in data["events"]:
            ev = StoredEvent.from_dict(raw)
            store.events[ev.id] = ev
            store.by_calendar.setdefault(ev.calendar_id, []).append(ev.id)
            if ev.kind != "exception":
                store.by_key[ev.key] = ev.id
        store.transactions = dict(data.get("transactions", {}))
        store.seq = data.get("seq", 0)
        store.on_change = self.store.on_change
        self.store = store
        self.delta = Delta(store)
        self.delta.load(data.get("delta", {}))
        self.api = Api(store, self.delta)
        self.admin = Admin(self.api)

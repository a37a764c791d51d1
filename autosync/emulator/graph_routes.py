"""HTTP routes of the Graph v1.0 calendar API in the emulator: path matching and handlers.

Listing, calendarView/delta, event reads and writes, as Graph documents them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, unquote

from autosync.emulator.core import Account, Request, Response
from autosync.emulator.graph_delta import Delta
from autosync.emulator.graph_errors import GraphError, bad_request, not_found
from autosync.emulator.graph_model import Calendar, StoredEvent
from autosync.emulator.graph_odata import order, parse_filter, raw_pairs, skip_link, top_skip, window
from autosync.emulator.graph_render import (
    Ctx,
    apply_select,
    cancelled_occurrences,
    parse_prefs,
    parse_select,
    render_attachments,
    render_full,
)
from autosync.emulator.graph_store import Slot, Store, instant

PRIMARY = "\x00primary"
_DELTA_UNSUPPORTED = ("$select", "$expand", "$filter", "$orderby", "$search", "$top", "$skip")


@dataclass
class Route:
    """A parsed Graph path."""

    name: str  # endpoint name, e.g. "graph.delta"
    calendar: str | None  # calendar id, PRIMARY, or None when the path names an event directly
    event_id: str | None


def parse_route(req: Request) -> Route:
    """Match ``/me/...`` and ``/users/{id|upn}/...`` paths; ``graph.unknown`` when nothing matches."""
    parts = req.path.split("/")[1:]
    if parts[:1] == ["subscriptions"]:
        return _subscription_route(req.method, parts[1:])
    if parts[:1] == ["me"]:
        rest = parts[1:]
    elif parts[:1] == ["users"] and len(parts) >= 2:
        rest = parts[2:]
    else:
        return Route("graph.unknown", None, None)
    segs = [unquote(s) for s in rest]
    if segs[:1] == ["calendar"]:
        segs = ["calendars", PRIMARY, *segs[1:]]
    elif segs[:1] == ["calendarView"] or segs == ["events"]:
        segs = ["calendars", PRIMARY, *segs]
    elif segs[:1] == ["events"]:
        return _event_route(req.method, None, segs[1:])
    if segs[:1] != ["calendars"]:
        return Route("graph.unknown", None, None)
    if len(segs) <= 2:
        return Route("graph.calendars", segs[1] if len(segs) == 2 else None, None)
    cal, tail = segs[1], segs[2:]
    if tail == ["calendarView", "delta"]:
        return Route("graph.delta", cal, None)
    if tail == ["calendarView"]:
        return Route("graph.calendarview", cal, None)
    if tail[:1] == ["events"]:
        if len(tail) == 1:
            return Route("graph.events.create" if req.method == "POST" else "graph.events.list", cal, None)
        return _event_route(req.method, cal, tail[1:])
    return Route("graph.unknown", None, None)


def _subscription_route(method: str, tail: list[str]) -> Route:
    """``/subscriptions[/{id}[/reauthorize]]`` (served by watch_routes)."""
    names: dict[tuple[str, int], str] = {
        ("POST", 0): "create",
        ("GET", 0): "list",
        ("GET", 1): "get",
        ("PATCH", 1): "update",
        ("DELETE", 1): "delete",
    }
    if len(tail) == 2 and tail[1] == "reauthorize" and method == "POST":
        return Route("graph.subscriptions.reauthorize", None, None)
    name = names.get((method, len(tail))) if all(tail) else None
    return Route(f"graph.subscriptions.{name}" if name else "graph.unknown", None, None)


def _event_route(method: str, cal: str | None, tail: list[str]) -> Route:
    if len(tail) == 1:
        names = {"GET": "graph.events.get", "PATCH": "graph.events.update", "DELETE": "graph.events.delete"}
        return Route(names.get(method, "graph.unknown"), cal, tail[0])
    if len(tail) == 2 and tail[1] in ("instances", "attachments"):
        return Route(f"graph.{tail[1]}", cal, tail[0])
    return Route("graph.unknown", None, None)


class Api:
    """Handlers of the API routes over a Store and its Delta."""

    def __init__(self, store: Store, delta: Delta) -> None:
        self.store = store
        self.delta = delta

    def calendar(self, account: Account | None, cal_id: str | None) -> Calendar:
        """The addressed calendar (PRIMARY = the mailbox's default)."""
        if cal_id == PRIMARY or cal_id is None:
            if account is None:
                raise not_found()
            return self.store.primary(account)
        return self.store.calendar_of(account, cal_id)

    def ctx(self, req: Request) -> Ctx:
        """Rendering context of a request."""
        return Ctx(req.base_url, parse_prefs(req.headers), self.store.calendars)

    def dispatch(self, req: Request) -> Response:
        """Run the handler of a request."""
        route = parse_route(req)
        self._check_user(req)
        handler = {
            "graph.calendars": self.calendars,
            "graph.events.list": self.list_events,
            "graph.events.create": self.create,
            "graph.events.get": self.get,
            "graph.events.update": self.update,
            "graph.events.delete": self.delete,
            "graph.instances": self.instances,
            "graph.attachments": self.attachments,
            "graph.calendarview": self.calendar_view,
            "graph.delta": self.delta_page,
        }.get(route.name)
        allowed = {
            "graph.events.create": "POST",
            "graph.events.update": "PATCH",
            "graph.events.delete": "DELETE",
        }
        if handler is None or req.method != allowed.get(route.name, "GET"):
            raise GraphError(400, "BadRequest", f"Unsupported request: {req.method} {req.path}")
        return handler(req, route)

    @staticmethod
    def _check_user(req: Request) -> None:
        parts = req.path.split("/")
        if len(parts) > 2 and parts[1] == "users" and req.account is not None:
            who = unquote(parts[2]).lower()
            if who not in (req.account.id.lower(), req.account.email.lower()):
                raise GraphError(
                    403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
                )

    def _context(self, req: Request, tail: str) -> str:
        user = req.account.id if req.account else ""
        return f"{req.base_url}/graph/v1.0/$metadata#users('{quote(user)}')/{tail}"

    # reads ---------------------------------------------------------------------------------------
    def calendars(self, req: Request, route: Route) -> Response:
        """GET /me/calendars and /me/calendars/{id}."""
        if req.account is not None:
            self.store.primary(req.account)
        cals = (
            [self.calendar(req.account, route.calendar)]
            if route.calendar
            else [c for c in self.store.calendars.values() if req.account and c.open_to(req.account.id)]
        )
        value = [
            {
                "id": c.id,
                "name": c.name,
                "color": "auto",
                "isDefaultCalendar": c.primary,
                "changeKey": c.id[-12:],
                "canShare": True,
                "canViewPrivateItems": True,
                "canEdit": True,
                "owner": {"name": c.display_name, "address": c.email},
            }
            for c in cals
        ]
        if route.calendar:
            return Response(200, {"@odata.context": self._context(req, "calendars/$entity"), **value[0]})
        return Response(200, {"@odata.context": self._context(req, "calendars"), "value": value})

    def render(self, target: StoredEvent | Slot, ctx: Ctx) -> dict[str, Any]:
        """Full JSON of a stored item or a plain occurrence."""
        if isinstance(target, Slot):
            if target.exception is not None:
                return render_full(target.exception, ctx, master=target.master)
            return render_full(
                target.master, ctx, slot=(target.start, target.end), occurrence=(target.id, target.original)
            )
        master = self.store.master_of(target) if target.kind == "exception" else None
        return render_full(target, ctx, master=master)

    def _expand(self, req: Request) -> bool:
        value = req.param("$expand")
        if value not in (None, "attachments"):
            raise bad_request(f"Unsupported $expand '{value}'.")
        return value == "attachments"

    def _one(
        self, target: StoredEvent | Slot, req: Request, ctx: Ctx, select: list[str] | None, expand: bool
    ) -> dict[str, Any]:
        out = apply_select(self.render(target, ctx), select)
        if expand:
            stored = target if isinstance(target, StoredEvent) else target.exception or target.master
            out["attachments"] = render_attachments(stored)
        return out

    def _page(
        self, req: Request, items: list[StoredEvent | Slot], context: str, default_top: int = 10
    ) -> Response:
        ctx = self.ctx(req)
        select, expand = parse_select(req.param("$select")), self._expand(req)
        top, skip = top_skip(req, default_top)
        body: dict[str, Any] = {"@odata.context": self._context(req, context)}
        if skip + top < len(items):
            body["@odata.nextLink"] = skip_link(req, top, skip + top)
        body["value"] = [self._one(t, req, ctx, select, expand) for t in items[skip : skip + top]]
        return Response(200, body, ctx.prefs.applied())

    def list_events(self, req: Request, route: Route) -> Response:
        """GET /me/calendars/{id}/events: series masters and single instances only."""
        cal = self.calendar(req.account, route.calendar)
        keep = parse_filter(req.param("$filter"))
        items = order([e for e in self.store.live_items(cal.id) if keep(e)], req.param("$orderby"))
        return self._page(req, list(items), f"calendars('{quote(cal.id)}')/events")

    def target(self, req: Request, route: Route) -> StoredEvent | Slot:
        """The item a route names: ``/me/events/{id}`` (own mailbox) or ``/me/calendars/{cal}/events/{id}``."""
        cal = self.calendar(req.account, route.calendar) if route.calendar is not None else None
        return self.store.resolve(req.account, route.event_id or "", cal)

    def get(self, req: Request, route: Route) -> Response:
        """GET /me/events/{id} (or through its calendar); ``cancelledOccurrences`` only when selected."""
        target = self.target(req, route)
        ctx = self.ctx(req)
        select = parse_select(req.param("$select"))
        body = self._one(target, req, ctx, select, self._expand(req))
        if select is not None and "cancelledOccurrences" in select:
            master = target if isinstance(target, StoredEvent) and target.kind == "seriesMaster" else None
            body["cancelledOccurrences"] = cancelled_occurrences(master) if master else []
        return Response(
            200, {"@odata.context": self._context(req, "events/$entity"), **body}, ctx.prefs.applied()
        )

    def instances(self, req: Request, route: Route) -> Response:
        """GET /me/events/{id}/instances: occurrences and exceptions in the window, not cancelled ones."""
        target = self.target(req, route)
        if not isinstance(target, StoredEvent) or target.kind != "seriesMaster":
            raise bad_request(
                "The instances of an item that is not a series master cannot be listed.",
                "ErrorInvalidRequest",
            )
        low, high = window(req)
        slots: list[StoredEvent | Slot] = list(self.store.slots(target, low, high))
        return self._page(req, slots, f"events('{quote(target.id)}')/instances")

    def calendar_view(self, req: Request, route: Route) -> Response:
        """GET /me/calendars/{id}/calendarView: singles, occurrences and exceptions in the window."""
        cal = self.calendar(req.account, route.calendar)
        low, high = window(req)
        items: list[StoredEvent | Slot] = []
        for ev in self.store.live_items(cal.id):
            if ev.kind == "seriesMaster":
                items.extend(self.store.slots(ev, low, high))
            elif instant(ev.start, ev.all_day) < high and instant(ev.end, ev.all_day) > low:
                items.append(ev)
        items.sort(key=lambda t: instant(t.start, t.master.all_day if isinstance(t, Slot) else t.all_day))
        return self._page(req, items, "calendarView")

    def attachments(self, req: Request, route: Route) -> Response:
        """GET /me/events/{id}/attachments."""
        target = self.target(req, route)
        stored = target if isinstance(target, StoredEvent) else target.exception or target.master
        return Response(
            200,
            {
                "@odata.context": self._context(req, f"events('{quote(stored.id)}')/attachments"),
                "value": render_attachments(stored),
            },
        )

    # writes --------------------------------------------------------------------------------------
    @staticmethod
    def body(req: Request) -> Any:
        """The JSON body; 400 when it does not parse."""
        try:
            return req.json()
        except (ValueError, UnicodeDecodeError) as exc:
            raise bad_request("Unable to read JSON request payload.", "RequestBodyRead") from exc

    def create(self, req: Request, route: Route) -> Response:
        """POST /me/calendars/{id}/events: 201; a repeated transactionId returns the first event."""
        cal = self.calendar(req.account, route.calendar)
        body = self.body(req)
        ctx = self.ctx(req)
        existing = self.store.find_transaction(cal, body) if isinstance(body, dict) else None
        created = existing or self.store.create(cal, body)
        written = replace(ctx, written=True)
        out = {"@odata.context": self._context(req, "events/$entity"), **self.render(created, written)}
        return Response(201, out, ctx.prefs.applied())

    def update(self, req: Request, route: Route) -> Response:
        """PATCH /me/events/{id}: only supplied properties change; 412 on a stale If-Match."""
        target = self.target(req, route)
        self.store.check_if_match(target, req.headers.get("If-Match"))
        updated = self.store.patch(target, self.body(req))
        ctx = self.ctx(req)
        written = replace(ctx, written=True)
        return Response(
            200,
            {"@odata.context": self._context(req, "events/$entity"), **self.render(updated, written)},
            ctx.prefs.applied(),
        )

    def delete(self, req: Request, route: Route) -> Response:
        """DELETE /me/events/{id}: 204; 404 ErrorItemNotFound when already gone."""
        target = self.target(req, route)
        self.store.check_if_match(target, req.headers.get("If-Match"))
        self.store.delete(target, quiet_occurrence=self.delta.config.silent_occurrence_deletes)
        return Response(204)

    # delta ---------------------------------------------------------------------------------------
    def delta_page(self, req: Request, route: Route) -> Response:
        """GET .../calendarView/delta: first round, next pages ($skiptoken), next rounds ($deltatoken)."""
        cal = self.calendar(req.account, route.calendar)
        pairs = raw_pairs(req.raw_query)
        names = [n for n, _ in pairs]
        for name in _DELTA_UNSUPPORTED:
            if name in names:
                raise bad_request(
                    f"The query parameter '{name}' is not supported with calendarView delta; "
                    "use Prefer: odata.maxpagesize to size pages."
                )
        tokens = [(n, v) for n, v in pairs if n in ("$skiptoken", "$deltatoken")]
        ctx = self.ctx(req)
        size = ctx.prefs.max_page_size or self.delta.config.default_page_size
        link_base = f"{req.base_url}/graph/v1.0{req.path}"
        if tokens:
            if len(pairs) != 1:
                raise bad_request(
                    "A delta link must be used as returned: the time window is frozen in the "
                    "token and startDateTime/endDateTime may not be sent again."
                )
            kind, state, offset = self.delta.lookup(tokens[0][1], cal.id)
            if kind == "delta":
                state = self.delta.start_round(cal.id, state.win_start, state.win_end, state)
                offset = -1 if self.delta.config.empty_first_page else 0
        else:
            low, high = window(req)
            state = self.delta.start_round(cal.id, low, high, None)
            offset = -1 if self.delta.config.empty_first_page else 0
        return Response(200, self.delta.page(state, offset, size, ctx, link_base), ctx.prefs.applied())

"""Google `events.list` / `events.instances` of the emulator: parameters, paging, sync tokens, tombstones."""

from __future__ import annotations

import copy
from bisect import bisect_left
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import partial
from typing import Any

from autosync.emulator import google_errors as err
from autosync.emulator.google_params import ListParams, encode_token
from autosync.emulator.google_state import GCalendar, GoogleState, Stored, instance_body
from autosync.emulator.google_time import (
    as_instant,
    edt_value,
    instance_suffix,
    occurrences,
    occurs,
    parse_rfc3339,
    render_edt,
    zone,
)

Key = tuple[Any, ...]
Thunk = Callable[[], dict[str, Any]]


def list_events(state: GoogleState, cal: GCalendar, p: ListParams) -> dict[str, Any]:
    """One page of events.list: full listing or incremental changes since a sync token."""
    tz = zone(p.response_tz or cal.time_zone)
    snapshot = p.page_token["h"] if p.page_token else state.seq
    after = p.page_token.get("k") if p.page_token else None
    if p.sync_token is not None:
        stream = _changes(state, cal, p, int(p.sync_token["q"]), snapshot, tz)
    else:
        stream = _full(state, cal, p, tz, None if p.order_by else after)
    if p.order_by is not None:  # explicit orderings need everything sorted first
        stream = iter(sorted(stream, key=lambda kv: kv[0]))
    token_base = {"t": "p", "c": cal.id, "e": state.epoch, "h": snapshot}
    page: list[tuple[Key, Thunk]] = []
    for key, thunk in stream:
        if after is not None and list(key) <= after:
            continue
        if state.settings.empty_pages and p.page_token is None:
            return envelope(cal, tz, [], next_page=encode_token({**token_base, "k": None}))
        if len(page) == p.max_results:
            items = [make() for _, make in page]
            return envelope(cal, tz, items, next_page=encode_token({**token_base, "k": list(page[-1][0])}))
        page.append((key, thunk))
    sync = encode_token({"t": "s", "c": cal.id, "e": state.epoch, "q": snapshot})
    return envelope(cal, tz, [make() for _, make in page], next_sync=sync)


def envelope(
    cal: GCalendar,
    tz: tzinfo,
    items: list[dict[str, Any]],
    next_page: str | None = None,
    next_sync: str | None = None,
    tz_name: str | None = None,
) -> dict[str, Any]:
    """The `calendar#events` envelope of Google events.list."""
    out: dict[str, Any] = {
        "kind": "calendar#events",
        "etag": f'"p{abs(hash((cal.id, cal.updated))) % 10**14:014d}o"',
        "summary": cal.summary,
        "description": "",
        "updated": cal.updated,
        "timeZone": tz_name or getattr(tz, "key", "UTC"),
        "accessRole": "owner",
        "defaultReminders": copy.deepcopy(cal.default_reminders),
    }
    if next_page:
        out["nextPageToken"] = next_page
    if next_sync:
        out["nextSyncToken"] = next_sync
    out["items"] = items
    return out


def render(body: dict[str, Any], tz: tzinfo) -> dict[str, Any]:
    """An event as returned: dateTime values written with the response zone's offset."""
    out = dict(body)  # stored bodies are never mutated below the top level, so a shallow copy suffices
    for key in ("start", "end", "originalStartTime"):
        if isinstance(out.get(key), dict):
            out[key] = render_edt(out[key], tz)
    return out


def tombstone(cal: GCalendar, body: dict[str, Any], tz: tzinfo) -> dict[str, Any]:
    """The minimal cancelled entry: kind/etag/id/status (+ recurringEventId/originalStartTime if it lives)."""
    out = {"kind": "calendar#event", "etag": body.get("etag"), "id": body["id"], "status": "cancelled"}
    master = cal.events.get(body.get("recurringEventId") or "")
    if master is not None and master.body.get("status") != "cancelled" and body.get("originalStartTime"):
        out["recurringEventId"] = body["recurringEventId"]
        out["originalStartTime"] = render_edt(body["originalStartTime"], tz)
    return out


def _full(
    state: GoogleState, cal: GCalendar, p: ListParams, tz: tzinfo, after: list[Any] | None
) -> Iterator[tuple[Key, Thunk]]:
    cal_tz = zone(cal.time_zone)
    exceptions = _exception_ids(cal) if p.single_events else {}
    stored_events = list(cal.events.values())  # insertion order = increasing `order`
    first = bisect_left(stored_events, after[0], key=lambda s: s.order) if after else 0
    for stored in stored_events[first:]:
        body = stored.body
        if body.get("status") == "cancelled":
            if _show_cancelled(cal, body, p):
                yield (_key(p, stored, body, cal_tz), partial(tombstone, cal, body, tz))
            continue
        if not _matches(body, p):
            continue
        if p.single_events and body.get("recurrence"):
            yield from _expand(state, cal, stored, p, tz, exceptions.get(body["id"], set()))
        elif _in_window(body, p, cal_tz):
            yield (_key(p, stored, body, cal_tz), partial(render, body, tz))


def _changes(
    state: GoogleState, cal: GCalendar, p: ListParams, base: int, snapshot: int, tz: tzinfo
) -> Iterator[tuple[Key, Thunk]]:
    changed = sorted((s for s in cal.events.values() if base < s.seq <= snapshot), key=lambda s: s.seq)
    exceptions = _exception_ids(cal) if p.single_events else {}
    for stored in changed:
        body = stored.body
        if body.get("status") == "cancelled":
            yield ((stored.seq, ""), partial(tombstone, cal, body, tz))
        elif _matches(body, p):
            if p.single_events and body.get("recurrence"):
                for key, thunk in _expand(state, cal, stored, p, tz, exceptions.get(body["id"], set())):
                    yield ((stored.seq, key[-1]), thunk)
            else:
                yield ((stored.seq, ""), partial(render, body, tz))


def _key(p: ListParams, stored: Stored, body: dict[str, Any], cal_tz: tzinfo, suffix: str = "") -> Key:
    if p.order_by == "startTime":
        start = body.get("start") or body.get("originalStartTime")
        stamp = as_instant(edt_value(start), cal_tz).timestamp() if start else 0.0
        return (stamp, body["id"])
    if p.order_by == "updated":
        return (body.get("updated", ""), stored.order, suffix)
    return (stored.order, suffix)


def _show_cancelled(cal: GCalendar, body: dict[str, Any], p: ListParams) -> bool:
    if p.show_deleted or p.updated_min is not None:
        return not (p.single_events and body.get("recurrence"))
    master = cal.events.get(body.get("recurringEventId") or "")
    live_instance = master is not None and master.body.get("status") != "cancelled"
    return live_instance and not p.single_events


def _matches(body: dict[str, Any], p: ListParams) -> bool:
    # eventTypes keeps only the named types; unset, every type is listed, birthdays, working locations
    # and Gmail's reservations included (discovery document, events.list `eventTypes`). It may go with
    # a syncToken (it is not one of the eight filters refused there). Deletions are never filtered
    # out, since the syncToken description promises every deletion since the token and a tombstone
    # carries no type to filter on: a client gets tombstones for ids of types it never listed.
    if p.event_types and body.get("eventType", "default") not in p.event_types:
        return False
    if p.ical_uid and body.get("iCalUID") != p.ical_uid:
        return False
    if p.updated_min and parse_rfc3339(body.get("updated", "1970-01-01T00:00:00Z")) < p.updated_min:
        return False
    if p.q:
        text = " ".join(str(body.get(k, "")) for k in ("summary", "description", "location")).lower()
        if not all(word in text for word in p.q.lower().split()):
            return False
    props = body.get("extendedProperties") or {}
    for scope, wanted in (("private", p.private_props), ("shared", p.shared_props)):
        for pair in wanted:
            name, _, value = pair.partition("=")
            if (props.get(scope) or {}).get(name) != value:
                return False
    return True


def _in_window(body: dict[str, Any], p: ListParams, cal_tz: tzinfo) -> bool:
    if p.time_min is None and p.time_max is None:
        return True
    start, end = edt_value(body["start"]), edt_value(body["end"])
    if body.get("recurrence"):
        duration = as_instant(end, cal_tz) - as_instant(start, cal_tz)
        lo = p.time_min - duration if p.time_min else None
        hi = p.time_max or datetime.now(UTC) + timedelta(days=3650)
        return occurs(body, lo, hi, cal_tz)
    return _overlaps(as_instant(start, cal_tz), as_instant(end, cal_tz), p.time_min, p.time_max)


def _overlaps(start: datetime, end: datetime, lo: datetime | None, hi: datetime | None) -> bool:
    return (lo is None or end > lo) and (hi is None or start < hi)


def _exception_ids(cal: GCalendar) -> dict[str, set[str]]:
    """master id → instance-id suffixes that have a stored exception."""
    out: dict[str, set[str]] = {}
    for stored in cal.events.values():
        master_id = stored.body.get("recurringEventId")
        original = stored.body.get("originalStartTime")
        if master_id and original:
            out.setdefault(master_id, set()).add(instance_suffix(edt_value(original)))
    return out


def _expand(
    state: GoogleState,
    cal: GCalendar,
    master: Stored,
    p: ListParams,
    tz: tzinfo,
    skip: set[str],
    inclusive_min: bool = False,
) -> Iterator[tuple[Key, Thunk]]:
    """Generated (non-exception) instances of a live master within the request's window."""
    cal_tz = zone(cal.time_zone)
    body = master.body
    start, end = edt_value(body["start"]), edt_value(body["end"])
    duration = as_instant(end, cal_tz) - as_instant(start, cal_tz)
    lo = p.time_min - duration if p.time_min else None
    horizon = datetime.now(UTC) + timedelta(days=state.settings.expansion_horizon_days)
    hi = p.time_max or horizon
    compare: Callable[[datetime, datetime], bool] = (lambda a, b: a >= b) if inclusive_min else (lambda a, b: a > b)
    for original in occurrences(body, lo, hi, cal_tz):
        suffix = instance_suffix(original)
        if suffix in skip:
            continue
        first = as_instant(original, cal_tz)
        if p.time_min is not None and not compare(first + duration, p.time_min):
            continue
        key = (
            (first.timestamp(), f"{body['id']}_{suffix}")
            if p.order_by == "startTime"
            else (_key(p, master, body, cal_tz, suffix))
        )
        yield key, partial(_render_instance, body, original, tz)


def _render_instance(master: dict[str, Any], original: datetime | date, tz: tzinfo) -> dict[str, Any]:
    return render(instance_body(master, original), tz)


def list_instances(state: GoogleState, cal: GCalendar, event_id: str, p: ListParams) -> dict[str, Any]:
    """events.instances: generated instances plus stored exceptions of one recurring event."""
    tz = zone(p.response_tz or cal.time_zone)
    cal_tz = zone(cal.time_zone)
    master = cal.events.get(event_id)
    if master is None:
        raise err.not_found()
    if master.body.get("status") == "cancelled":
        raise err.deleted()
    p.order_by = None
    items: list[tuple[Key, Thunk]] = []
    if not master.body.get("recurrence"):
        items.append(((0, ""), partial(render, master.body, tz)))
    else:
        exceptions = [s for s in cal.events.values() if s.body.get("recurringEventId") == event_id]
        skip = {instance_suffix(edt_value(s.body["originalStartTime"])) for s in exceptions}
        items.extend(((0, k[-1]), t) for k, t in _expand(state, cal, master, p, tz, skip, inclusive_min=True))
        for stored in exceptions:
            items.extend(_exception_item(cal, stored.body, p, tz, cal_tz))
        items.sort(key=lambda kv: kv[0])
    after = p.page_token.get("k") if p.page_token else None
    if after is not None:
        items = [kv for kv in items if list(kv[0]) > after]
    page = items[: p.max_results]
    next_page = None
    if len(items) > p.max_results:
        next_page = encode_token({"t": "p", "c": cal.id, "e": state.epoch, "h": state.seq, "k": list(page[-1][0])})
    return envelope(cal, tz, [make() for _, make in page], next_page=next_page)


def _exception_item(
    cal: GCalendar, body: dict[str, Any], p: ListParams, tz: tzinfo, cal_tz: tzinfo
) -> list[tuple[Key, Thunk]]:
    key: Key = (0, instance_suffix(edt_value(body["originalStartTime"])))
    if body.get("status") == "cancelled":
        return [(key, partial(tombstone, cal, body, tz))] if p.show_deleted else []
    start, end = as_instant(edt_value(body["start"]), cal_tz), as_instant(edt_value(body["end"]), cal_tz)
    if (p.time_min is None or end >= p.time_min) and (p.time_max is None or start < p.time_max):
        return [(key, partial(render, body, tz))]
    return []

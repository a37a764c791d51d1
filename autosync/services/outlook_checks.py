"""Outlook checks of a pull page: series followed through /instances, notified series, @removed ids.

Graph's calendarView/delta is instance-oriented: a round may list a series' occurrences without its
master, may show nothing of a deleted occurrence, and marks items that only left the window as
@removed. These functions make a page's Event lists right despite that (see README, Outlook quirks).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from autosync import errors
from autosync.model import Event, Skipped
from autosync.normalize.common import text
from autosync.normalize.outlook import event_from_graph, occurrence_refs
from autosync.providers import CalendarRef, Page
from autosync.services.context import App
from autosync.services.series import expected_slots, pin_all_day, without_exdates
from autosync.store.events import FOREIGN_REMOVALS

if TYPE_CHECKING:
    from autosync.services.pull import Prepared

T = TypeVar("T")


@dataclass(frozen=True)
class Stored:
    """What the store knows about what an Outlook page names (store.events.load_outlook_page)."""

    series: dict[str, tuple[bool, list[date]]] = field(default_factory=dict)  # master -> (checked, exclusions)
    hinted: list[str] = field(default_factory=list)  # notified masters (last page only)
    removed_stored: list[str] | None = None  # the page's @removed ids that are our live rows (None: unknown)
    live_series: list[str] | None = None  # last page: our live masters, when the round removed ids not ours

    @classmethod
    def of(cls, staged: dict[str, Any]) -> Stored:
        """From a staged page loaded with load_outlook_page."""
        return cls(staged["series"], staged["hinted"], staged["removed_stored"], staged["live_series"])


def _series_ids(items: list[Any]) -> set[str]:
    """Ids of the series masters a raw Graph page lists or names."""
    ids = set()
    for item in items:
        if isinstance(item, dict) and "@removed" not in item:
            if item.get("seriesMasterId"):
                ids.add(str(item["seriesMasterId"]))
            elif item.get("type") == "seriesMaster" and item.get("id"):
                ids.add(str(item["id"]))
    return ids


def outlook_details(app: App, cal: CalendarRef, out: Prepared, page: Page, removed: list[str],
                    window: tuple[datetime, datetime], stored: Stored) -> None:
    """Check the series a page touches through /instances, and apply its @removed ids."""
    provider = app.outlook
    masters = {e.ext_id: e for e in out.live if e.recurrence and not e.recurring_event_id}
    # Series this page touches: the masters it lists and the masters its occurrences and exceptions
    # name. A round need not list a master at all (Microsoft's delta docs name only instances, and
    # reports differ on masters of series that began before the window), so the names are followed
    # in full rounds too; each series is checked once per round, however many pages it spans.
    # A notified master no page of the round named changed in a way the delta does not show (a
    # deleted occurrence, see watch.verify): check it too.
    touched = set(masters) | _series_ids(page.items) | set(stored.hinted)
    checked = {m for m, (done, _) in stored.series.items() if done}
    # A master already checked on an earlier page of this round was stored from that check.
    out.live = [e for e in out.live if e.ext_id not in checked or e.ext_id not in masters]
    todo = sorted(touched - checked)

    def fetch(master_id: str) -> tuple[Event | None, Any]:
        """(the master, its /instances answer): the requests of one series, made in any order."""
        master = masters.get(master_id)
        if master is None:
            got = _fetch_master(provider, cal, master_id)
            if not isinstance(got, Event):
                return None, got
            master = got
        try:
            return master, provider.instances(cal, master_id, window)
        except errors.NotFound:  # the series was deleted after this page was listed
            return master, _GONE

    for master_id, (master, instances) in zip(todo, _each(app, fetch, todo), strict=True):
        if master is None:
            if isinstance(instances, Skipped):
                out.skipped.append(instances)
            else:
                out.deleted.append(master_id)
            continue
        if master_id not in masters:
            out.live.append(master)
            out.seen.append(master_id)
            masters[master_id] = master
        if instances is _GONE:
            out.deleted.append(master_id)
            continue
        out.checked.append(master_id)
        reconcile_series(instances, master, out, window, event_from_graph,
                         stored.series.get(master_id, (False, []))[1])
    _outlook_removals(provider, cal, out, page, removed, stored)


_GONE = object()


def full_round(app: App, cal: CalendarRef, out: Prepared, page: Page, removed: list[str],
               window: tuple[datetime, datetime], stored: Stored) -> None:
    """A page of a full round: hold back its series and record what it lists of each.

    A full round lists every instance inside the window, so what it lists of a series is what a GET
    of the series' /instances would answer, and asking for it once per series (thousands of requests
    on a large calendar) is not needed. Each page, the last one included, holds back its series
    masters and exceptions from its own writes and records them, with its occurrences' slots, in its
    transaction (``series_listed``); when the round's last page is in, services/initial.py reconciles
    the series from those records a few hundred at a time (reconcile_listed) before that page is
    written. No master is written before then, so the stored exclusions it replaces are still there.
    """
    listing = _listing(out, page)
    if listing:
        out.series_listed = listing
    _outlook_removals(app.outlook, cal, out, page, removed, stored)


def _listing(out: Prepared, page: Page) -> dict[str, dict[str, Any]]:
    """What a page lists of each series: its master and exceptions as listed (taken out of
    ``out.live``), its occurrences' slot stamps, and whether its master was listed but unreadable."""
    held = {e.ext_id for e in out.live if e.recurring_event_id or e.recurrence}
    out.live = [e for e in out.live if e.ext_id not in held]
    series: dict[str, dict[str, Any]] = {}

    def entry(master_id: str) -> dict[str, Any]:
        return series.setdefault(master_id, {"items": [], "slots": []})

    for item in page.items:
        if isinstance(item, dict) and "@removed" not in item and text(item.get("id")) in held:
            entry(text(item.get("seriesMasterId")) or text(item.get("id")))["items"].append(item)
    for _, master_id, start in occurrence_refs(page.items):
        entry(master_id)["slots"].append(_stamp(start.astimezone(UTC) if isinstance(start, datetime) else start))
    bad = {s.ext_id for s in out.skipped}
    for item in page.items:
        if isinstance(item, dict) and item.get("type") == "seriesMaster" and "@removed" not in item \
                and text(item.get("id")) in bad:
            entry(text(item.get("id")))["unreadable"] = True
    for value in series.values():
        value["slots"] = ",".join(value["slots"])  # one string per series and page, not one per slot
    return series


def reconcile_listed(app: App, cal: CalendarRef, out: Prepared, masters: list[str],
                     listed: dict[str, list[dict[str, Any]]], window: tuple[datetime, datetime],
                     stored_series: dict[str, tuple[bool, list[date]]]) -> None:
    """Reconcile some series of a full round from what its pages recorded of them (``listed``, per
    series); a master no page listed (``delta_masters``), or a notified one no page named, is fetched."""
    provider = app.outlook
    found: dict[str, Event] = {}
    exceptions: dict[str, list[dict[str, Any]]] = {}
    slots: dict[str, set[datetime | date]] = {}
    unreadable: set[str] = set()
    for master_id in masters:
        items: dict[str, dict[str, Any]] = {}
        for entry in listed.get(master_id, []):
            for item in entry.get("items") or []:
                if isinstance(item, dict):
                    items[text(item.get("id"))] = item
            slots.setdefault(master_id, set()).update(_unstamp(s) for s in (entry.get("slots") or "").split(",") if s)
            if entry.get("unreadable"):
                unreadable.add(master_id)
        for item_id, item in items.items():
            if item_id != master_id:
                exceptions.setdefault(master_id, []).append(item)
                continue
            try:
                found[master_id] = event_from_graph(item)
            except errors.NormalizeError as exc:  # an item recorded as page_json's stand-in
                out.skipped.append(Skipped(item_id, exc.reason))
                unreadable.add(master_id)
    todo = [m for m in masters if m not in unreadable]
    unlisted = [m for m in todo if m not in found]
    fetched = dict(zip(unlisted, _each(app, lambda m: _fetch_master(provider, cal, m), unlisted), strict=True))
    for master_id in todo:
        master = found.get(master_id) or fetched[master_id]
        if master is _GONE:
            out.deleted.append(master_id)
            continue
        if isinstance(master, Skipped):
            out.skipped.append(master)
            continue
        assert isinstance(master, Event)
        if master_id in fetched:
            out.seen.append(master_id)
        out.live.append(_reconcile(master, exceptions.get(master_id, []), slots.get(master_id, ()), out, window,
                                   event_from_graph, stored_series.get(master_id, (False, []))[1]))


def _fetch_master(provider: Any, cal: CalendarRef, master_id: str) -> Event | Skipped | object:
    """A series master by id: the Event, a Skipped for one that cannot be read, or _GONE."""
    raw = provider.master(cal, master_id)
    if raw is None:
        return _GONE
    try:
        return event_from_graph(raw)
    except errors.NormalizeError as exc:
        return Skipped(master_id, exc.reason)


def _each(app: App, fetch: Callable[[str], T], ids: list[str]) -> Iterator[T]:
    """``fetch`` of every id, in order. The series of one page are fetched a few at a time: each is one
    or two requests whose wait would otherwise add up (Graph answers in 100-300 ms). Leave slots of
    the mailbox's concurrency to the full listing's lister and to other steps of the mailbox."""
    workers = min(4, app.settings.outlook_mailbox_concurrency - 2, len(ids))
    if workers <= 1:
        yield from map(fetch, ids)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="autosync-series") as pool:
        futures = [pool.submit(contextvars.copy_context().run, fetch, i) for i in ids]
        try:
            for future in futures:
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


def _outlook_removals(provider: Any, cal: CalendarRef, out: Prepared, page: Page, removed: list[str],
                      stored: Stored) -> None:
    """Apply a page's @removed ids.

    @removed also covers events that only left the window (provider rule 22), so one of ours is fetched before
    it is deleted; an id that is not ours needs nothing. Such ids are mostly instances, and when a
    round lists no series masters a deleted series shows only that way: so after a round with such
    ids, one listing of the calendar's live masters (on its last page) tells which of ours are gone.
    """
    ours = set(removed if stored.removed_stored is None else stored.removed_stored)
    for ext_id in removed:
        if ext_id in ours and provider.get(cal, ext_id) is None:
            out.deleted.append(ext_id)
    if not page.complete and any(ext_id not in ours for ext_id in removed):
        out.checked.append(FOREIGN_REMOVALS)  # remembered for the round's last page
    if page.complete and stored.live_series:
        alive = provider.series_ids(cal) | {e.ext_id for e in out.live}
        out.deleted += [m for m in stored.live_series if m not in alive and m not in out.deleted]


def reconcile_series(instances: list[dict], master: Event, out: Prepared, window: tuple[datetime, datetime],
                     normalize: Any, stored_excluded: list[date]) -> None:
    """Reconcile a series from its /instances answer (see _reconcile); ``master`` is in ``out.live``."""
    updated = _reconcile(master, instances, (), out, window, normalize, stored_excluded)
    out.live[:] = [updated if e.ext_id == master.ext_id else e for e in out.live]


def _reconcile(master: Event, instances: list[dict], occurrences: Any, out: Prepared,
               window: tuple[datetime, datetime], normalize: Any, stored_excluded: list[date]) -> Event:
    """Exceptions become instances; occurrences the rule promises but the listing lacks are cancelled.

    ``instances`` are raw items (an /instances answer, or the exceptions a full round listed),
    ``occurrences`` the slots of plain occurrences known without their items (a full round's bare
    occurrences: UTC datetimes, or dates for all-day series).
    The master's exclusions become: those slots, the dates its ``cancelledOccurrences`` named (when it
    was fetched with them), else the stored ones outside the window, which a listing cannot see.
    Returns the master with those exclusions.
    """
    expected = expected_slots(without_exdates(master), window)  # cancelled ones count as missing
    promised = {s for s in expected if not isinstance(s, datetime)}
    present: set[datetime | date] = set()
    exceptions: dict[str, Event] = {}
    for item in instances:
        kind = item.get("type")
        try:
            event = normalize(item, master=master)
        except errors.NormalizeError as exc:
            out.skipped.append(Skipped(str(item.get("id", "")), exc.reason))
            continue
        slot = event.original_start or event.start
        if master.all_day and slot is not None and not isinstance(slot, datetime):
            slot = pin_all_day(slot, promised)
            event = replace(event, original_start=slot)
        if slot is not None:
            present.add(slot)
        if kind == "exception":
            exceptions[event.ext_id] = replace(event, recurring_event_id=master.ext_id)
    if exceptions:  # they replace the page's copies of them, in place (callers hold on to out.live)
        out.live[:] = [e for e in out.live if e.ext_id not in exceptions] + list(exceptions.values())
    for slot in occurrences:
        if master.all_day:
            # A bare occurrence carries no isAllDay, so its start was read as a time: the midnight of
            # its floating day, in UTC because every request asks for UTC (Prefer outlook.timezone).
            day = slot.date() if isinstance(slot, datetime) else slot
            present.add(pin_all_day(day, promised))
        else:
            present.add(slot)
    missing = [s for s in expected if s not in present]
    for slot in missing:
        out.cancelled_instances.append(Event(ext_id=f"{master.ext_id}#{_stamp(slot)}", status="cancelled",
                                             recurring_event_id=master.ext_id, original_start=slot))
    lo, hi = window[0].date(), window[1].date()
    known = (set(master.excluded_dates) if "cancelledOccurrences" in (master.raw or {})
             else {d for d in stored_excluded if not lo <= d <= hi})
    dates = tuple(sorted({s.date() if isinstance(s, datetime) else s for s in missing} | known))
    # The rule lines stay as Graph's item gives them (EXDATEs for cancelledOccurrences included): the
    # push compares the row with that item, and a recurrence that merely looked changed would be sent
    # back in a PATCH, which makes Outlook drop the series' exceptions and cancellations.
    out.series_instances[master.ext_id] = list(exceptions) + [f"{master.ext_id}#{_stamp(s)}" for s in missing]
    return replace(master, excluded_dates=dates)


def _stamp(slot: datetime | date) -> str:
    return slot.strftime("%Y%m%dT%H%M%SZ") if isinstance(slot, datetime) else slot.strftime("%Y%m%d")


def _unstamp(stamp: str) -> datetime | date:
    """The inverse of _stamp (by hand: strptime cost seconds over a large round's slots)."""
    day = date(int(stamp[0:4]), int(stamp[4:6]), int(stamp[6:8]))
    if len(stamp) == 8:
        return day
    if len(stamp) != 16 or stamp[8] != "T" or stamp[15] != "Z":
        raise ValueError(f"not a slot stamp: {stamp!r}")
    return datetime(day.year, day.month, day.day, int(stamp[9:11]), int(stamp[11:13]), int(stamp[13:15]), tzinfo=UTC)

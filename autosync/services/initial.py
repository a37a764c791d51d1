"""Full listings (first link, invalid cursor, window roll): fetch and import in one step, pipelined.

An incremental run stages its page and imports it in a second task (pull.fetch_step, import_step).
A full listing is many pages, and that two-task shape made the provider's time and the worker's
time add up: page N+1 was asked for only after page N's import committed, and every page made a
round trip through PostgreSQL as jsonb. Here one task handles a budget of pages (settings
``full_sync_step_pages`` / ``full_sync_step_seconds``) in three stages, each on its own thread:

- a lister asks for page after page, each with the token the previous answer carried, as soon as
  that answer is in (it runs a few pages ahead of the writer: ``pages_ahead``);
- a preparer normalizes each listed page and builds its rows (pure Python; an Outlook page that ends
  the round or removes ids is passed on for the writer to prepare, as those read the store);
- the step's own thread writes page after page, in listing order.

So the provider's time, the worker's Python and PostgreSQL's merge overlap instead of adding up.

Each page commits on its own, in one transaction: its rows, the run's ``pageCursor`` (page N's token
for N+1) and, on the last page, the calendar's sync cursor (pull._apply). So what a killed worker
leaves is pages 1..N and the token of N+1; the redelivered task (late ack) or ``resume_stale`` lists
from that token again, and the pages that were read ahead are simply asked for once more (page
tokens name a position in a listing and may be used again, as a retried fetch step already does).
Nothing larger than ids ever goes through the broker: the task re-enqueues itself by run id when
its budget is spent. The lister stops at the budget, and every page it listed is written before the
step ends, so no request is wasted unless the step fails or another delivery is ahead of it.
"""

from __future__ import annotations

import contextvars
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from autosync.model import Step
from autosync.normalize.common import text
from autosync.providers import CalendarRef, Page
from autosync.providers.http import RequestStats
from autosync.services.context import App
from autosync.services.outlook_checks import Stored, _series_ids, reconcile_listed
from autosync.services.runs import Next
from autosync.store.runs import RunContext

if TYPE_CHECKING:
    from autosync.services.pull import Prepared

# How far the lister may read ahead of the writer (pages listed or being listed, prepared, or being
# written, beyond the one the step's thread writes), counted in items: memory goes with items, and
# a Google page holds 2,500 events (about 13 MB once parsed) where a Graph page holds 1,000 items,
# most of them bare occurrences. So two Google pages (about 40 MB in all with the one being written)
# and five Graph pages. Graph pages come every 47 ms or so and the three stages' times vary from page
# to page: five instead of two made an Outlook 50k sync 7-8 % faster, while more than two gained
# Google nothing (BENCHMARKS.md, "Phase 5").
AHEAD_ITEMS = 5000


def pages_ahead(page_size: int) -> int:
    """Pages the lister may have out beyond the one being written: AHEAD_ITEMS' worth, 2 to 8."""
    return max(2, min(8, AHEAD_ITEMS // max(1, page_size)))


# CPython's GIL switch interval while a listing's threads run. The writer (the step's own thread)
# lets go of the GIL at every PostgreSQL round trip and must then win it back from the preparer,
# which is all Python and gives it up only when the interval has passed: at the default 5 ms, each
# of a page's statements could wait that long for its answer to be read. At 0.5 ms a Google 50k
# initial sync ran 7-10 % faster (BENCHMARKS.md, phase 5). The interval is the process's: it is
# shortened while any listing in the process runs (a threads pool runs several) and put back after.
SWITCH_INTERVAL = 0.0005
_switch_lock = threading.Lock()
_switch_users = 0
_switch_saved = 0.0


@contextmanager
def _short_switch() -> Iterator[None]:
    global _switch_users, _switch_saved
    with _switch_lock:
        if _switch_users == 0:
            _switch_saved = sys.getswitchinterval()
            if _switch_saved > SWITCH_INTERVAL:  # one already shorter is left alone (and not re-set:
                sys.setswitchinterval(SWITCH_INTERVAL)  # CPython keeps whole microseconds, rounding down)
        _switch_users += 1
    try:
        yield
    finally:
        with _switch_lock:
            _switch_users -= 1
            if _switch_users == 0 and _switch_saved > SWITCH_INTERVAL:
                sys.setswitchinterval(_switch_saved)


@dataclass(frozen=True)
class _Failed:
    """A stage's exception, handed down the pipeline to be raised in the step's thread."""

    error: BaseException


_END = object()  # the lister has listed its last page (budget spent or listing complete)


def full_pages(app: App, run: RunContext, first: Page, window: tuple[datetime, datetime],
               stats: RequestStats, list_page: Callable[[str], Page]) -> Next:
    """Import ``first`` and the pages after it, up to the step's budget; the next step of the run.

    ``list_page(token)`` lists the page a token names (it runs in the lister thread); ``stats``
    counts this step's provider requests (the lister's included).
    """
    # Imported here: pull imports this module's caller side, and pull's helpers are the write path.
    from autosync.services import pull

    settings = app.settings
    deadline = time.monotonic() + min(settings.full_sync_step_seconds, settings.task_soft_time_limit / 3)
    # The run was loaded before this step's first page: pages written by this step may record
    # deletions (pull._write), so its later pages, and the last one, must look for them.
    run = replace(run, pending_deletes=True)
    provider = app.provider(run.calendar_type)
    checks_series = provider.checks_series
    stop = threading.Event()
    slots = threading.Semaphore(pages_ahead(provider.page_size))  # released as the step's thread writes a page
    listed: queue.Queue[Any] = queue.Queue()  # bounded by the slots
    ready: queue.Queue[Any] = queue.Queue()

    def slot() -> bool:
        """Wait for a free slot unless the step stopped meanwhile; False when it did."""
        while not stop.is_set():
            if slots.acquire(timeout=0.05):
                return True
        return False

    def lister(token: str | None, budget: int) -> None:
        try:
            while token and budget > 0 and time.monotonic() < deadline and slot():
                page = list_page(token)
                budget -= 1
                listed.put(page)
                token = page.next_page
            listed.put(_END)
        except BaseException as exc:  # raised again in the step's thread
            listed.put(_Failed(exc))

    def preparer() -> None:
        while not stop.is_set():
            try:
                item = listed.get(timeout=0.05)
            except queue.Empty:
                continue
            if item is _END or isinstance(item, _Failed):
                ready.put(item)
                return
            try:
                prepared = None
                # An Outlook page needs nothing from the store unless it ends the round (which
                # reconciles the round's series) or removes ids (which of them are ours).
                if not checks_series or (not item.complete and not _removed(item)):
                    prepared = pull.prepare(app, run, item, window, Stored() if checks_series else None,
                                            full_round=True)
                    prepared.encoded = app.store.encode(prepared.live)
            except BaseException as exc:  # raised again in the step's thread
                ready.put(_Failed(exc))
                return
            ready.put((item, prepared))

    def take() -> Any:
        while True:
            try:
                return ready.get(timeout=1.0)
            except queue.Empty:
                if not threads[1].is_alive():  # cannot happen short of a bug; never wait forever
                    raise RuntimeError("the page preparer stopped without a word") from None

    # Both threads run in copies of this step's context: the lister's requests count in its stats.
    threads = [
        threading.Thread(target=contextvars.copy_context().run, name="autosync-lister", daemon=True,
                         args=(lister, first.next_page, settings.full_sync_step_pages - 1)),
        threading.Thread(target=contextvars.copy_context().run, name="autosync-preparer", daemon=True,
                         args=(preparer,)),
    ]
    pipelined = bool(first.next_page and settings.full_sync_step_pages > 1)
    if pipelined:
        for thread in threads:
            thread.start()
    else:  # one page (most calendars) or a budget of one: nothing to overlap, no thread to start
        ready.put(_END)
    page, prepared, listed_from = first, None, run.page_cursor
    fresh_ok = True  # until a page's fresh COPY meets an existing row (pull.Prepared.fresh_ok)
    with _short_switch() if pipelined else nullcontext(), _stopping(stop):
        while True:
            if prepared is None:
                stored = _outlook_state(app, run, page) if checks_series else None
                prepared = pull.prepare(app, run, page, window, stored, full_round=True)
            if checks_series and page.complete and not _reconcile_series(app, run, prepared, window, listed_from,
                                                                         fresh_ok):
                return Next(Step.DONE, run.run_id)  # another delivery of this step moved the run on
            requests = stats.count
            prepared.fresh_ok = fresh_ok
            nxt = pull._apply(app, run, prepared, page, requests, window, pages=1, listed_from=(listed_from,))
            fresh_ok = fresh_ok and not prepared.fresh_refused
            stats.settle(requests)  # written with the page (the lister's later ones, with later pages)
            if page is not first:
                slots.release()
            if nxt.step != Step.FETCH:
                return nxt  # the run is over (or pushes next), or another delivery has it
            item = take()
            if item is _END:
                return nxt  # the budget is spent: the next step lists from the run's pageCursor
            if isinstance(item, _Failed):
                raise item.error
            listed_from = page.next_page
            page, prepared = item


@contextmanager
def _stopping(stop: threading.Event) -> Iterator[None]:
    """Tell the pipeline's threads to stop when the step ends. Not waited for: a step that ends early
    (an error, the soft time limit, another delivery ahead) does not sit out a request in flight;
    its pages are listed again by whoever goes on."""
    try:
        yield
    finally:
        stop.set()


def _reconcile_series(app: App, run: RunContext, last: Prepared, window: tuple[datetime, datetime],
                      listed_from: str | None, fresh_ok: bool = True) -> bool:
    """Before a full Outlook round's last page is written: reconcile every series the round touched.

    The last page's own series are recorded first, then the series are read back, reconciled and
    written a part at a time, each part in its own transaction that leaves the run's cursor where it
    is (pull.write_part): a step killed in between lists the last page again and does it all again,
    which rewrites nothing that did not change. Their deletions wait for the last page, as every
    page's do. False when another delivery of the step has moved the run on.
    """
    from autosync.services import pull

    with app.store.unit() as tx:
        if last.series_listed:
            tx.record_series_listed(run.run_id, last.series_listed)
        masters = sorted(set(tx.series_masters(run.run_id)) | set(last.hinted))
    last.series_listed = None
    # A part's size (settings.full_sync_series_per_part) is what bounds the memory this takes (a series'
    # recorded items and slots, its master and its rows), however many series the calendar has.
    size = app.settings.full_sync_series_per_part
    for at in range(0, len(masters), size):
        chunk = masters[at:at + size]
        with app.store.unit() as tx:
            listed = tx.series_listed(run.run_id, chunk)
            state = tx.outlook_state(run.calendar_id, run.run_id, chunk, [], False)
        part = pull.with_token(app, run, partial(_reconciled, app, chunk, listed, window, state["series"]))
        part.fresh_ok = fresh_ok
        if not pull.write_part(app, run, part, window, listed_from):
            return False
        fresh_ok = fresh_ok and not part.fresh_refused
    return True


def _reconciled(app: App, chunk: list[str], listed: dict[str, list[dict[str, Any]]],
                window: tuple[datetime, datetime], series: dict[str, Any], cal: CalendarRef) -> Prepared:
    """One part of a full round's series, reconciled into writes (outlook_checks.reconcile_listed)."""
    from autosync.services import pull

    part = pull.Prepared()
    reconcile_listed(app, cal, part, chunk, listed, window, series)
    return part


def _removed(page: Page) -> list[str]:
    return [text(i.get("id")) for i in page.items if isinstance(i, dict) and "@removed" in i]


def _outlook_state(app: App, run: RunContext, page: Page) -> Stored:
    """What the store knows about the series and @removed ids an Outlook page names."""
    with app.store.unit() as tx:
        state = tx.outlook_state(run.calendar_id, run.run_id, sorted(_series_ids(page.items)), _removed(page),
                                 page.complete)
    return Stored(state["series"], state["hinted"], state["removed_stored"], state["live_series"])

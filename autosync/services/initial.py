"""Full listings (first link, invalid cursor, window roll): fetch and import in one step, one page ahead.

An incremental run stages its page and imports it in a second task (pull.fetch_step, import_step).
A full listing is many pages, and that two-task shape made the provider's time and the worker's
time add up: page N+1 was asked for only after page N's import committed, and every page made a
round trip through PostgreSQL as jsonb. Here one task handles a budget of pages (settings
``full_sync_step_pages`` / ``full_sync_step_seconds``): while page N is normalized and written, a
second thread of the same task already lists page N+1 with the token page N's answer carried.

Each page commits on its own, in one transaction: its rows, the run's ``pageCursor`` (page N's token
for N+1) and, on the last page, the calendar's sync cursor (pull._apply). So what a killed worker
leaves is pages 1..N and the token of N+1; the redelivered task (late ack) or ``resume_stale`` lists
from that token again, and the page that was being read ahead is simply asked for once more (page
tokens name a position in a listing and may be used again, as a retried fetch step already does).
Nothing larger than ids ever goes through the broker: the task re-enqueues itself by run id when
its budget is spent, and the last page of a budget is not read ahead, so no request is wasted.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime

from autosync.model import Step
from autosync.normalize.common import text
from autosync.providers import Page
from autosync.providers.http import RequestStats
from autosync.services.context import App
from autosync.services.outlook_checks import Stored, _series_ids
from autosync.services.runs import Next
from autosync.store.runs import RunContext


def full_pages(app: App, run: RunContext, first: Page, window: tuple[datetime, datetime],
               stats: RequestStats, list_page: Callable[[str], Page]) -> Next:
    """Import ``first`` and the pages after it, up to the step's budget; the next step of the run.

    ``list_page(token)`` lists the page a token names (it runs in the read-ahead thread); ``stats``
    counts this step's provider requests (the read-ahead thread's included).
    """
    # Imported here: pull imports this module's caller side, and pull's helpers are the write path.
    from autosync.services import pull

    settings = app.settings
    budget_pages = settings.full_sync_step_pages
    budget_s = min(settings.full_sync_step_seconds, settings.task_soft_time_limit / 3)
    started = time.monotonic()
    page, listed_from = first, run.page_cursor
    # The run was loaded before this step's first page: pages written by this step may record
    # deletions (pull._write), so its later pages, and the last one, must look for them.
    run = replace(run, pending_deletes=True)
    checks_series = app.provider(run.calendar_type).checks_series
    done = 0
    ahead_pool = ThreadPoolExecutor(1, thread_name_prefix="autosync-read-ahead")
    ahead: Future[Page] | None = None
    try:
        while True:
            done += 1
            last_of_budget = done >= budget_pages or time.monotonic() - started >= budget_s
            if page.next_page and not last_of_budget:
                # The read-ahead thread counts its requests in this step's stats (same context).
                ahead = ahead_pool.submit(contextvars.copy_context().run, list_page, page.next_page)
            stored = _outlook_state(app, run, page) if checks_series else None
            prepared = pull.prepare(app, run, page, window, stored)
            requests = stats.count
            nxt = pull._apply(app, run, prepared, page, requests, window, pages=1, listed_from=(listed_from,))
            stats.settle(requests)  # written with the page (the read-ahead's are counted with the next)
            if nxt.step != Step.FETCH or ahead is None:
                return nxt  # the run is over (or pushes next), another delivery has it, or the budget is spent
            listed_from = page.next_page
            page, ahead = ahead.result(), None
    finally:
        # Not waited for: a step that ends early (an error, the soft time limit, another delivery ahead)
        # does not sit out a read-ahead request; its page is listed again by whoever goes on.
        ahead_pool.shutdown(wait=False, cancel_futures=True)


def _outlook_state(app: App, run: RunContext, page: Page) -> Stored:
    """What the store knows about the series and @removed ids an Outlook page names."""
    removed = [text(i.get("id")) for i in page.items if isinstance(i, dict) and "@removed" in i]
    with app.store.unit() as tx:
        state = tx.outlook_state(run.calendar_id, run.run_id, sorted(_series_ids(page.items)), removed,
                                 page.complete)
    return Stored(state["series"], state["hinted"], state["removed_stored"], state["live_series"])

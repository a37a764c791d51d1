"""Pull sync: fetch a page of changes, stage it, import it with its cursor in one transaction.

Full listings (first link, invalid cursor, window roll) are not staged: fetch_step hands them to
services/initial.py, which lists, prepares and writes page after page in the same step, on three threads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from autosync import errors, metrics
from autosync.model import Event, Skipped, Step
from autosync.providers import CalendarRef, Page
from autosync.providers.http import counting
from autosync.services import conflicts, initial, outlook_checks, plan, runs
from autosync.services.context import App
from autosync.services.outlook_checks import Stored
from autosync.services.runs import Next
from autosync.services.tokens import ensure_token
from autosync.store.api import Tx
from autosync.store.events import FOREIGN_REMOVALS, Encoded
from autosync.store.runs import NO_COUNTS, RunContext

log = logging.getLogger(__name__)
T = TypeVar("T")


class MassDeleteBlocked(errors.AutosyncError):
    """A run would delete more of a calendar than the guard allows; nothing was applied."""


@dataclass
class Prepared:
    """A page turned into writes: everything decided before the transaction opens."""

    live: list[Event] = field(default_factory=list)
    cancelled_instances: list[Event] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)
    series_instances: dict[str, list[str]] = field(default_factory=dict)  # master -> live exception ids
    checked: list[str] = field(default_factory=list)  # Outlook: for the round's later pages (outlook_checks)
    hinted: list[str] = field(default_factory=list)  # notified Outlook series this page dealt with
    encoded: Encoded | None = None  # the live events' rows, built ahead (services.initial)
    series_listed: dict[str, Any] | None = None  # a full Outlook round's page: its series (outlook_checks)
    # A full listing of an emptied calendar: whether this page may COPY its rows in without a merge
    # (store.events.COPY_FRESH), and whether that met an existing row (services/initial then stops
    # trying for the rest of the step: a calendar linked again over its dead rows would pay twice).
    fresh_ok: bool = True
    fresh_refused: bool = False

    def copy(self) -> Prepared:
        """An independent copy (the Outlook checks extend the lists in place)."""
        return Prepared(list(self.live), list(self.cancelled_instances), list(self.deleted), list(self.skipped),
                        list(self.seen), {k: list(v) for k, v in self.series_instances.items()},
                        list(self.checked), list(self.hinted), self.encoded, self.series_listed)


def window_for(app: App, run: RunContext, full: bool) -> tuple[datetime, datetime]:
    """The run's window: fixed for the run once chosen, the stored one for Outlook deltas."""
    if run.window_start and run.window_end:
        return run.window_start, run.window_end
    if not full and app.provider(run.calendar_type).window_in_cursor and run.sync_window_start \
            and run.sync_window_end:
        return run.sync_window_start, run.sync_window_end
    now = datetime.now(UTC).replace(microsecond=0)
    return (now - timedelta(days=app.settings.sync_past_days),
            now + timedelta(days=app.settings.sync_future_days))


def needs_full(app: App, run: RunContext) -> bool:
    """Full listing: no cursor, an invalidated one, or an Outlook window that must roll forward."""
    if run.full_sync or not run.delta_link:
        return True
    if app.provider(run.calendar_type).window_in_cursor:
        end = run.sync_window_end
        roll_at = timedelta(days=app.settings.sync_future_days - app.settings.window_roll_days)
        if end is None or end - datetime.now(UTC) < roll_at:
            return True
    return False


def fetch_step(app: App, run_id: int) -> Next:
    """Fetch one page; stage it for import, or apply an empty page right here."""
    with counting() as stats:
        run = load_run(app, run_id)
        if run is None:
            return Next(Step.DONE, run_id)
        cal = ensure_token(app, run)
        full = needs_full(app, run)
        window = window_for(app, run, full)
        if full and not run.full_sync:
            empty = _begin_full(app, run_id, window, drop_cursor=False, calendar_id=run.calendar_id)
            run = replace(run, full_sync=True, page_cursor=None, empty_at_start=empty)
        try:
            page = _list(app, run, cal, full, window)
        except errors.LinkRefused:
            # A link that would carry the token elsewhere: drop the stored cursor so the next run
            # lists the calendar in full from the configured URL, and fail this run with the reason.
            if not run.dry_run:
                with app.store.unit() as tx:
                    tx.drop_cursor(run.calendar_id)
            raise
        except errors.CursorInvalid as exc:
            # One handler for an invalid cursor: drop it, full sync, tombstone what is not seen.
            log.warning("cursor invalid, full resync", extra={"calendar": run.calendar_id,
                                                              "reason": exc.describe()})
            window = window_for(app, replace(run, window_start=None, window_end=None), True)
            empty = _begin_full(app, run_id, window, drop_cursor=not run.dry_run, calendar_id=run.calendar_id)
            run = replace(run, full_sync=True, page_cursor=None, delta_link=None, empty_at_start=empty)
            page = _list(app, run, cal, True, window)
        if run.full_sync:  # a full listing: listed, prepared and written by services/initial.py, no staging
            listing = run
            return initial.full_pages(app, run, page, window, stats,
                                      lambda token: _list(app, replace(listing, page_cursor=token), cal, True, window))
    # Notified series (series_hint) and a round's foreign @removed ids are dealt with on its last
    # page, even an empty one (outlook_checks).
    if page.items or (page.complete and app.provider(run.calendar_type).checks_series and run.last_page_checks):
        with app.store.unit() as tx:
            page_id = tx.stage_page(run_id, {"items": page.items, "meta": page.meta},
                                    page.sync_cursor if page.complete else page.next_page, page.complete)
            if page_id is None:
                return Next(Step.DONE, run_id)  # a duplicate delivery already staged this page
            tx.progress(run_id, Step.IMPORT, page.next_page, stats.count, NO_COUNTS)
        return Next(Step.IMPORT, run_id, page_id, calendar_type=run.calendar_type, calendar_id=run.calendar_id)
    return _apply(app, run, Prepared(), page, stats.count, window)


def import_step(app: App, run_id: int, page_id: int) -> Next:
    """Normalize a staged page and write it, with its cursor, in one transaction."""
    with counting() as stats:
        run = load_run(app, run_id)
        if run is None:
            return Next(Step.DONE, run_id)
        with app.store.unit() as tx:
            if app.provider(run.calendar_type).checks_series:
                staged = tx.load_outlook_page(run.calendar_id, run_id, page_id)
            else:
                staged = tx.load_page(run_id, page_id)
        if staged is None:
            return Next(Step.DONE, run_id)  # already imported (duplicate delivery)
        window = window_for(app, run, bool(run.full_sync))
        body = staged["body"]
        page = Page(items=body["items"], next_page=None if staged["isFinal"] else staged["nextCursor"],
                    sync_cursor=staged["nextCursor"] if staged["isFinal"] else None, meta=body.get("meta") or {})
        checks = app.provider(run.calendar_type).checks_series
        prepared = prepare(app, run, page, window, Stored.of(staged) if checks else None)
    return _apply(app, run, prepared, page, stats.count, window, page_id=page_id)


def load_run(app: App, run_id: int) -> RunContext | None:
    """A run joined with its calendar, or None when it is over.

    A calendar switched off since the run opened raises CalendarInactive: the step's task fails the
    run with that reason (and shows as failed, not as a success that did nothing).
    """
    with app.store.unit() as tx:
        run = tx.run_context(run_id)
    if run is None or run.finished_at is not None:
        return None
    if not run.calendar_active:
        raise errors.CalendarInactive("calendar is not active")
    return run


def _begin_full(app: App, run_id: int, window: tuple[datetime, datetime], *, drop_cursor: bool,
                calendar_id: int) -> bool:
    """Turn the run into a full listing; whether the calendar held no live provider rows (emptyAtStart)."""
    with app.store.unit() as tx:
        empty = tx.begin_full(run_id, window)
        if drop_cursor:
            tx.drop_cursor(calendar_id)
    return empty


def _list(app: App, run: RunContext, cal: CalendarRef, full: bool,
          window: tuple[datetime, datetime]) -> Page:
    provider = app.provider(run.calendar_type)
    cursor = None if full else run.delta_link
    try:
        try:
            return provider.list_changes(cal, cursor=cursor, page=run.page_cursor, window=window)
        except errors.AuthInvalid:
            fresh = ensure_token(app, run, stale=cal.access_token)
            return provider.list_changes(fresh, cursor=cursor, page=run.page_cursor, window=window)
    except errors.NotFound as exc:
        raise errors.CalendarGone(str(exc), status=exc.status, code=exc.code) from None


def prepare(app: App, run: RunContext, page: Page, window: tuple[datetime, datetime],
            stored: Stored | None = None, full_round: bool = False) -> Prepared:
    """Normalize a page; for Outlook, check the series it touches: through /instances, or in a full
    round (``full_round``: services/initial.py) from what the round itself lists."""
    out = Prepared()
    events, out.skipped, removed = app.provider(run.calendar_type).read_page(page.items, page.meta)
    sorted_ = plan.sort_events(events)
    out.live, out.cancelled_instances, out.deleted = sorted_.live, sorted_.cancelled_instances, sorted_.deleted
    out.seen = [e.ext_id for e in events] + [s.ext_id for s in out.skipped if s.ext_id]
    if app.provider(run.calendar_type).checks_series:
        known = stored or Stored()
        details = outlook_checks.full_round if full_round else outlook_checks.outlook_details
        normalized = out

        def checked(cal: CalendarRef) -> Prepared:
            done = normalized.copy()  # a retry starts again from the normalized page
            details(app, cal, done, page, removed, window, known)
            return done

        out = with_token(app, run, checked)
        out.hinted = list(known.hinted)
    return out


def with_token(app: App, run: RunContext, call: Callable[[CalendarRef], T]) -> T:
    """``call(cal)`` with the calendar's token; when the provider refuses that token midway (it can
    expire between two requests of one step), refresh it once and make the whole call again."""
    cal = ensure_token(app, run)
    try:
        return call(cal)
    except errors.AuthInvalid:
        return call(ensure_token(app, run, stale=cal.access_token))


def _apply(app: App, run: RunContext, prepared: Prepared, page: Page, requests: int,
           window: tuple[datetime, datetime], page_id: int | None = None, pages: int = 0,
           listed_from: tuple[str | None] | None = None) -> Next:
    """Write a prepared page with its cursor in one transaction; the run's next step.

    ``pages``: count it as fetched (pages that were not staged). ``listed_from``: the page token the
    page was listed with; it is written only while the run's cursor is still that token, so a second
    delivery of the same step that got ahead of this one (or behind it) never writes a page twice.
    """
    run_id, calendar_id = run.run_id, run.calendar_id
    try:
        with app.store.unit() as tx:
            if listed_from is not None and not tx.claim_cursor(run_id, listed_from[0]):
                return Next(Step.DONE, run_id)
            # Claim the staged page first: a duplicate delivery of this step finds it gone and stops,
            # so a page is applied exactly once even when two workers got the same message.
            if page_id is not None and not tx.drop_page(page_id):
                return Next(Step.DONE, run_id)
            counts, refused = _write(app, tx, run, prepared, page, window)
            if pages:
                tx.bump_pages(run_id, pages)
            if not page.complete:
                tx.progress(run_id, Step.FETCH, page.next_page, requests, counts)
                return Next(Step.FETCH, run_id, calendar_type=run.calendar_type, calendar_id=calendar_id)
            if refused is None and tx.push_due(calendar_id):
                tx.progress(run_id, Step.PUSH, None, requests, counts)
                return Next(Step.PUSH, run_id, calendar_type=run.calendar_type, calendar_id=calendar_id)
            # A dry run the guard would stop ends as the real run would: blocked, with the reason.
            finished = runs.finish(tx, run_id, "blocked" if refused else "ok", refused, requests=requests,
                                   counts=counts)
    except MassDeleteBlocked as exc:
        with app.store.unit() as tx:
            finished = runs.finish(tx, run_id, "blocked", str(exc), requests=requests)
        log.error("mass delete blocked", extra={"calendar": calendar_id, "reason": str(exc)})
    follow = runs.rerun_if_requested(app, finished)
    return follow[0] if follow else Next(Step.DONE, run_id)


def write_part(app: App, run: RunContext, prepared: Prepared, window: tuple[datetime, datetime],
               cursor: str | None) -> bool:
    """Write part of the run's next page ahead of it (the series a full Outlook round reconciles on its
    last page: services/initial.py), in one transaction that leaves the run's cursor at ``cursor``.
    Its deletions are recorded for the last page, as an earlier page's are. False, writing nothing,
    when the run is no longer at ``cursor`` (another delivery of the step moved it on)."""
    with app.store.unit() as tx:
        if not tx.claim_cursor(run.run_id, cursor):
            return False
        # Written as a page that is not the round's last (``complete`` is ``next_page is None``): a
        # part applies no deletions and commits no sync cursor; the last page itself does both.
        not_last = Page(items=[], next_page=cursor or "", sync_cursor=None)
        counts, _ = _write(app, tx, run, prepared, not_last, window)
        tx.progress(run.run_id, Step.FETCH, cursor, 0, counts)
    return True


def _write(app: App, tx: Tx, run: RunContext, prepared: Prepared, page: Page,
           window: tuple[datetime, datetime]) -> tuple[dict[str, int], str | None]:
    """Write one page; returns its counts and, for a dry run the guard would stop, the guard's reason.

    Deletions are recorded with each page and applied on the run's last page, once the mass-delete
    guard has decided on the run's total: a run applies all of its deletions or none. A dry run
    writes the page's events, deletions and cursor inside a savepoint that is rolled back, so it
    counts exactly what the real run would write; the run's listing bookkeeping (ids seen, deletions
    found) is kept, as later pages need it.
    """
    calendar_id, user_id, run_id = run.calendar_id, run.user_id, run.run_id
    dry = bool(run.dry_run)
    if run.full_sync and run.empty_at_start:
        # Nothing was live when the listing began: the not-seen query could only find rows this run
        # wrote, which it listed. Only the Outlook series checked on this page are remembered, so the
        # round's later pages do not check them again (load_outlook_page / outlook_state).
        checked = [c for c in prepared.checked if c != FOREIGN_REMOVALS]
        if checked and not page.complete:
            tx.record_seen(run_id, checked)
    elif run.full_sync and prepared.seen:
        tx.record_seen(run_id, prepared.seen)
    elif prepared.checked and not page.complete:  # incremental: its later pages skip these series
        tx.record_seen(run_id, prepared.checked)
    if prepared.series_listed:  # kept in a dry run too, as the seen ids are
        tx.record_series_listed(run_id, prepared.series_listed)
    refused: str | None = None
    # No savepoint for a real run: it would cost two statements per page.
    with tx.rollback_after(dry):
        resolved = conflicts.resolve(app, tx, run, prepared.live, prepared.deleted, prepared.cancelled_instances)
        live, cancelled = resolved.live, resolved.cancelled
        found = list(resolved.deleted)
        # A full listing that began on an empty calendar wrote every instance row there is, each one
        # among its series' current ones: nothing can be stale.
        if not (run.full_sync and run.empty_at_start):
            for master_id, keep in prepared.series_instances.items():
                found += tx.stale_instances(calendar_id, master_id, keep)
        if page.complete and run.full_sync and not run.empty_at_start:
            found += tx.unseen(calendar_id, run_id, window[0].date())
        deletes = plan.page_deletes(
            found, [e.ext_id for e in live], last_page=page.complete, earlier=run.pending_deletes,
            recorded=tx.take_pending_deletes(run_id) if page.complete and run.pending_deletes else None)
        to_delete = deletes.apply
        if page.complete:
            refused = _guard(app, tx, run, to_delete)
        merged = tx.upsert(calendar_id, user_id, live, prepared.encoded,
                           fresh=bool(run.full_sync and run.empty_at_start and prepared.fresh_ok))
        prepared.fresh_refused = merged.merged_instead
        prepared.skipped.extend(merged.skipped)
        cancelled_n = tx.cancel_instances(calendar_id, user_id, cancelled)
        deleted_n = tx.delete_events(calendar_id, to_delete)
        tx.record_skips(run_id, calendar_id, prepared.skipped)
        if page.complete:
            tx.drop_hints(calendar_id, prepared.hinted)
        if page.complete and page.sync_cursor:
            tx.commit_cursor(calendar_id, page.sync_cursor,
                             window if app.provider(run.calendar_type).window_in_cursor else (None, None))
            if not dry:
                metrics.imported(run.calendar_type, calendar_id, app.settings.watch_enabled)
    # Kept in a dry run too: the run's last page decides on them.
    tx.unpend_deletes(run_id, deletes.unrecord)
    tx.pend_deletes(run_id, deletes.record)
    if not dry:
        for s in prepared.skipped:
            log.warning("skipped malformed event", extra={"calendar": calendar_id, "event": s.ext_id,
                                                          "reason": s.reason})
    return {"upserted": merged.inserted + merged.updated, "unchanged": merged.unchanged,
            "deleted": deleted_n + cancelled_n, "skipped": len(prepared.skipped),
            "conflicts": resolved.conflicts}, refused


def _guard(app: App, tx: Tx, run: RunContext, to_delete: list[str]) -> str | None:
    """The mass-delete guard over the whole run's deletions (imported side), before any is applied.

    Raises MassDeleteBlocked when it refuses; a dry run gets the reason back instead and goes on
    counting, so the operator sees both what the guard says and what consent would delete.
    """
    if not to_delete or run.allow_mass_delete:
        return None
    s = app.settings
    verdict = plan.mass_delete(tx.count_deletable(run.calendar_id, to_delete), tx.count_live(run.calendar_id),
                               ratio=s.mass_delete_ratio, minimum=s.mass_delete_min, consent=False,
                               side="import", calendar_id=run.calendar_id)
    if verdict.allowed:
        return None
    if run.dry_run:
        return verdict.reason
    raise MassDeleteBlocked(verdict.reason)


def token_step(app: App, run_id: int) -> Next:
    """Make sure the calendar has a usable access token (refreshing once per account)."""
    run = load_run(app, run_id)
    if run is None:
        return Next(Step.DONE, run_id)
    with counting() as stats:
        ensure_token(app, run)
    with app.store.unit() as tx:
        step = Step.WATCH if app.settings.watch_enabled and not run.dry_run and tx.watch_due(
            run.calendar_id, app.settings.watch_renew_before) else Step.FETCH
        tx.touch(run_id, step, stats.count)
    return Next(step, run_id, calendar_type=run.calendar_type, calendar_id=run.calendar_id)

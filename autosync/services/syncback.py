"""Sync-back: push the app's inserts, updates and deletes of events on linked calendars to the provider."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import UTC, date, datetime, time
from typing import Any

import psycopg
import psycopg_pool
import redis

from autosync import errors
from autosync.model import Attachment, Attendee, Conference, Event, Organizer, Reminder, Step
from autosync.providers import CalendarRef
from autosync.providers.http import counting
from autosync.redact import describe
from autosync.retries import Fail, Retry, Wait, decide
from autosync.services import plan, runs
from autosync.services import syncback_write as write
from autosync.services.context import App, context
from autosync.services.runs import Next
from autosync.services.syncback_rules import ProviderDeleted, google_type, refusal_text
from autosync.services.tokens import ensure_token
from autosync.store.api import Tx
from autosync.store.outbox import BATCH
from autosync.store.runs import RunContext

log = logging.getLogger(__name__)

# sharedStatus of the share tables -> Google response status (2 = declined rows are never pushed).
SHARED_STATUS = {0: "needsAction", 1: "accepted", 2: "declined", 3: "tentative"}


def _moment(d: date | None, t: time | None) -> datetime | date | None:
    if d is None:
        return None
    return datetime.combine(d, t, tzinfo=UTC) if t is not None else d


def event_from_row(row: dict[str, Any], shares: list[dict[str, Any]], removed: set[str] | frozenset[str] = frozenset()
                   ) -> Event:
    """The app's version of an event, from its cal_event row and share tables.

    ``removed`` holds the (lower-case) e-mails of shares withdrawn since the last push: the row may
    still list them, because the import brought the pushed attendees into it.
    """
    attendees = {a["email"].lower(): Attendee(**a) for a in row["attendees"] or []
                 if a.get("email") and a["email"].lower() not in removed}
    for s in shares:
        key = s["email"].lower()
        status = SHARED_STATUS.get(int(s["shared_status"] or 0), "needsAction")
        old = attendees.get(key)
        attendees[key] = replace(old, status=status) if old else Attendee(s["email"], s["name"] or "", status)
    conf = None
    if row["conferenceType"] or row["conferenceUri"]:
        conf = Conference(row["conferenceType"] or "", row["conferenceUri"] or "",
                          json.dumps(row["conferenceData"], sort_keys=True, separators=(",", ":"))
                          if row["conferenceData"] else "")
    all_day = bool(row["linkAllDay"])
    return Event(
        ext_id=row["extEventId"] or "", status="confirmed" if row["status"] else "cancelled",
        summary=row["eventName"] or "", description=row["description"] or "", location=row["location"] or "",
        all_day=all_day, start=_moment(row["startDate"], None if all_day else row["startTime"]),
        end=_moment(row["endDate"], None if all_day else row["endTime"]),
        start_tz=row["startTimeZone"], end_tz=row["endTimeZone"], recurrence=tuple(row["recurrence"] or ()),
        recurring_event_id=row["recurringEventId"],
        organizer=Organizer(row["organizerName"] or "", row["organizerEmail"] or "")
        if row["organizerEmail"] is not None else None,
        attendees=tuple(attendees.values()),
        reminders=tuple(Reminder(**r) for r in row["reminders"] or []),
        reminders_use_default=bool(row["remindersUseDefault"]), conference=conf,
        attachments=tuple(Attachment(**a) for a in row["attachments"] or []),
        excluded_dates=tuple(row["excludedDates"] or ()),
    )


def push_step(app: App, run_id: int) -> Next:
    """Push every due app change of the run's calendar; failures wait for a later run, never block."""
    with app.store.unit() as tx:
        run = tx.run_context(run_id)
    if run is None or run.finished_at is not None:
        return Next(Step.DONE, run_id)
    counts = {"pushCreated": 0, "pushUpdated": 0, "pushDeleted": 0, "pushFailed": 0}
    blocked: str | None = None
    with counting() as stats:
        cal = ensure_token(app, run)
        with app.store.unit() as tx:
            rows = tx.pending_pushes(run.calendar_id)
            blocked = _mass_delete(app, tx, run, rows)
        if run.dry_run:  # what the run would push, nothing sent
            rows, counts = [], _would_push(rows, blocked is not None)
        for row in rows:
            if plan.push_action(row["op"], row["extEventId"], blocked is not None) == "hold":
                continue
            try:
                outcome = _push_one(app, run, cal, row)
            except errors.AuthInvalid:
                # The stored token was refused: refresh once (under the account lock), retry this push.
                cal = ensure_token(app, run, stale=cal.access_token)
                outcome = _push_one(app, run, cal, row, last_try=True)
            counts[outcome] = counts.get(outcome, 0) + 1
    with app.store.unit() as tx:
        tx.add_push_counts(run_id, counts)
        finished = runs.finish(tx, run_id, "blocked" if blocked else "ok", blocked, requests=stats.count)
    follow = runs.rerun_if_requested(app, finished)
    return follow[0] if follow else Next(Step.DONE, run_id)


def _mass_delete(app: App, tx: Tx, run: RunContext, rows: list[dict[str, Any]]) -> str | None:
    """The mass-delete guard on the app side (plan.mass_delete), over every due delete of the calendar.

    A run pushes at most one batch of the outbox; when the batch is full, or holds enough deletes to
    matter, the guard counts the whole outbox, so a mass delete cannot slip out a batch at a time.
    """
    s = app.settings
    batch = sum(1 for r in rows if r["op"] == "delete" and r["extEventId"])
    if not batch or run.allow_mass_delete or (batch < max(1, s.mass_delete_min) and len(rows) < BATCH):
        return None
    counted = tx.count_deletes(run.calendar_id)
    verdict = plan.mass_delete(counted["deletes"], counted["deletes"] + counted["kept"],
                               ratio=s.mass_delete_ratio, minimum=s.mass_delete_min, consent=False,
                               side="sync-back", calendar_id=run.calendar_id)
    return verdict.reason


def _would_push(rows: list[dict[str, Any]], deletes_held: bool) -> dict[str, int]:
    """A dry run's push counts: what each due outbox entry would do (plan.push_action)."""
    counts = {"pushCreated": 0, "pushUpdated": 0, "pushDeleted": 0, "pushFailed": 0}
    names = {"create": "pushCreated", "update": "pushUpdated", "delete": "pushDeleted"}
    for row in rows:
        action = plan.push_action(row["op"], row["extEventId"], deletes_held)
        if action in names:
            counts[names[action]] += 1
    return counts


def _push_one(app: App, run: RunContext, cal: CalendarRef, row: dict[str, Any], *,
              last_try: bool = False) -> str:
    """Push one outbox entry; transient failures wait for a later run. A refused token raises
    AuthInvalid (unless ``last_try``) so the caller can refresh it once."""
    provider = app.provider(run.calendar_type)
    event_id, op = row["eventId"], row["op"]
    with app.store.unit() as tx:
        ev = tx.event_row(event_id)
        shares = tx.share_attendees(event_id) if ev else []
    if ev is None or not ev["status"]:
        op = "delete"
    ext_id = (ev or {}).get("extEventId") or row["extEventId"]
    record: dict[str, Any] = {"op": op, "eventId": event_id, "calendarId": run.calendar_id,
                              "calendarType": run.calendar_type, "extEventId": ext_id}
    refused = provider.refusal(ev) if ev is not None and ext_id else None
    if refused:  # never a write Google would refuse, and never a retry loop: recorded once
        return _done(app, run, row, record, "refused", refused, "pushFailed")
    try:
        if op == "delete":
            if ext_id:
                provider.delete(cal, ext_id)
            elif provider.ids_are_keys:  # a create that may have reached the provider before the delete
                provider.delete(cal, provider.create_key(run.calendar_id, event_id))
            result, stored = "pushDeleted", None
        else:
            assert ev is not None
            event = event_from_row(ev, shares, frozenset(row.get("removedAttendees") or ()))
            if ext_id:
                stored = write.update(app, run, cal, ev, event, row)
                result = "pushUpdated"
            else:
                stored = write.create(app, run, cal, event, event_id, row)
                result = "pushCreated"
    except ProviderDeleted as gone:
        assert ev is not None
        return _provider_deleted(app, run, row, record, ev, gone)
    except errors.AuthInvalid:
        if not last_try:
            raise
        # Refused right after a refresh: the account's problem, not this entry's; a later run retries it.
        return _retry_later(app, run, row, record, errors.Transient("access token refused after a refresh"))
    except (psycopg.OperationalError, psycopg_pool.PoolTimeout, redis.RedisError):
        # Our own PostgreSQL or Redis is away, not the provider refusing: the entry stays pending and
        # the step is retried (a create carries its idempotency key, so a retry finds a first attempt).
        raise
    except Exception as exc:  # one entry's failure must not block the entries after it
        verdict = decide(exc, int(row["attempts"]), max_retries=None, backoff_cap=app.settings.task_backoff_cap)
        if not isinstance(verdict, Fail):
            return _retry_later(app, run, row, record, exc, verdict.delay)
        text = verdict.message(_text(exc)) if verdict.unexpected else _text(exc)
        if verdict.unexpected:
            log.exception("push crashed", extra={"calendar": run.calendar_id, "event": event_id})
        else:
            log.error("push failed", extra={"calendar": run.calendar_id, "event": event_id, "error": text})
        with app.store.unit() as tx:
            tx.close_push(row["outboxId"], row["changedAt"], "failed", text)
            tx.log_push(run.user_id, {**record, "outcome": "failed", "error": _text(exc)})
        return "pushFailed"
    outcome, error = "ok", None
    with app.store.unit() as tx:
        if stored is not None:
            kept = stored.pop("columns", None)
            refused_fields, patched = stored.pop("refused", set()), stored.pop("patched", True)
            beaten = stored.pop("conflict", None)
            tx.adopt(run.calendar_id, stored["ext"], event_id)
            tx.store_pushed(event_id, stored)
            if kept:
                tx.store_columns(event_id, kept, row["outboxId"], row["changedAt"])
            if beaten is not None:  # the app's live row won over a deletion made at the provider
                tx.record_conflict(run.calendar_id, beaten["id"], policy=app.settings.conflict_policy, winner="app",
                                   app=None, provider=_json(beaten), outbox_id=row["outboxId"])
            if refused_fields:
                outcome, error = "refused", refusal_text(google_type(ev or {}), refused_fields)
                result = result if patched else "pushFailed"
            record["extEventId"] = stored["ext"]
        tx.close_push(row["outboxId"], row["changedAt"], outcome, error)
        tx.log_push(run.user_id, {**record, "outcome": outcome, **({"error": error} if error else {})})
    return result


def _done(app: App, run: RunContext, row: dict[str, Any], record: dict[str, Any], outcome: str, error: str,
          result: str) -> str:
    """Close an outbox entry without a provider write (recorded in the outbox and temp_log)."""
    with app.store.unit() as tx:
        tx.close_push(row["outboxId"], row["changedAt"], outcome, error)
        tx.log_push(run.user_id, {**record, "outcome": outcome, "error": error})
    log.warning("push not sent", extra={"calendar": run.calendar_id, "event": row["eventId"], "error": error})
    return result


def _provider_deleted(app: App, run: RunContext, row: dict[str, Any], record: dict[str, Any],
                      ev: dict[str, Any], gone: ProviderDeleted) -> str:
    """A create found its event deleted at Google since our first attempt made it, and the deletion
    won: the row is deleted in the app as an imported deletion would be, with both versions recorded."""
    stored = write.stored_answer(app, run, gone.raw, write.zone_hint(app, run, ev))
    text = f"deleted at Google after autosync created it; the deletion won (policy {gone.policy})"
    with app.store.unit() as tx:
        tx.adopt(run.calendar_id, stored["ext"], row["eventId"])
        tx.store_pushed(row["eventId"], stored)
        tx.mark_deleted(row["eventId"], row["outboxId"], row["changedAt"])
        tx.record_conflict(run.calendar_id, stored["ext"], policy=gone.policy, winner="provider",
                           app=_json({k: v for k, v in ev.items() if k != "providerData"}), provider=None,
                           outbox_id=row["outboxId"])
        tx.close_push(row["outboxId"], row["changedAt"], "superseded by provider change", text)
        tx.log_push(run.user_id, {**record, "extEventId": stored["ext"], "outcome": "superseded",
                                           "error": text})
    return "superseded"


def _retry_later(app: App, run: RunContext, row: dict[str, Any], record: dict[str, Any],
                 exc: BaseException, delay: float | None = None) -> str:
    """Leave the entry pending with a backoff; a later run pushes it (import is never blocked)."""
    if delay is None:
        verdict = decide(exc, int(row["attempts"]), max_retries=None, backoff_cap=app.settings.task_backoff_cap)
        delay = verdict.delay if isinstance(verdict, Retry | Wait) else 1.0
    with app.store.unit() as tx:
        tx.retry_push_later(row["outboxId"], _text(exc), max(1.0, delay))
        tx.log_push(run.user_id, {**record, "outcome": "retry", "error": _text(exc)})
    return "pushFailed"


def _text(exc: BaseException) -> str:
    """The error text stored on the outbox entry and in temp_log: scrubbed of tokens and secrets."""
    return describe(exc, context().settings.secrets())


def _json(value: Any) -> str:
    return json.dumps(value, default=str)

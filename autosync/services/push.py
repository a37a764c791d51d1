"""Sync-back: push the app's inserts, updates and deletes of events on linked calendars to the provider."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, time
from typing import Any

from autosync import errors
from autosync.model import Attachment, Attendee, Conference, Event, Organizer, Reminder
from autosync.providers import CalendarRef
from autosync.providers.http import backoff, counting
from autosync.redact import describe
from autosync.services import runs
from autosync.services.context import Context, context
from autosync.services.runs import Next
from autosync.services.tokens import ensure_token
from autosync.store import outbox as sql
from autosync.store import runs as run_sql
from autosync.store.db import transaction

log = logging.getLogger(__name__)

# sharedStatus of the share tables -> Google response status (2 = declined rows are never pushed).
SHARED_STATUS = {0: "needsAction", 1: "accepted", 2: "declined", 3: "tentative"}
APP_FIELDS = ("summary", "description", "location", "all_day", "start", "end", "start_tz", "end_tz",
              "recurrence", "attendees", "reminders", "reminders_use_default", "status")


def google_event_id(calendar_id: int, event_id: int) -> str:
    """A client-chosen Google id (base32hex, stable per event), so a retried insert never duplicates."""
    digest = hashlib.blake2b(f"miplanit:{calendar_id}:{event_id}".encode(), digest_size=10).digest()
    return "mp" + base64.b32hexencode(digest).decode().lower().rstrip("=")


def transaction_id(calendar_id: int, event_id: int) -> str:
    """A stable Graph transactionId for the same purpose."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"miplanit:{calendar_id}:{event_id}"))


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


def push_step(app: Context, run_id: int) -> Next:
    """Push every due app change of the run's calendar; failures wait for a later run, never block."""
    with transaction() as conn:
        ctx = run_sql.run_context(conn, run_id)
    if ctx is None or ctx["finishedAt"] is not None:
        return Next("done", run_id)
    counts = {"pushCreated": 0, "pushUpdated": 0, "pushDeleted": 0, "pushFailed": 0}
    blocked: str | None = None
    with counting() as stats:
        cal = ensure_token(app, ctx)
        with transaction() as conn:
            rows = sql.pending(conn, ctx["calendarId"])
            blocked = _mass_delete(app, conn, ctx, rows)
        for row in rows:
            if blocked and row["op"] == "delete":
                continue
            try:
                outcome = _push_one(app, ctx, cal, row)
            except errors.AuthInvalid:
                # The stored token was refused: refresh once (under the account lock), retry this push.
                cal = ensure_token(app, ctx, stale=cal.access_token)
                outcome = _push_one(app, ctx, cal, row, last_try=True)
            counts[outcome] = counts.get(outcome, 0) + 1
    with transaction() as conn:
        conn.execute(run_sql.ADD_PUSH_COUNTS, {**counts, "run_id": run_id})
        finished = runs.finish(conn, run_id, "blocked" if blocked else "ok", blocked, requests=stats.count)
    follow = runs.rerun_if_requested(app, finished)
    return follow[0] if follow else Next("done", run_id)


def _mass_delete(app: Context, conn: Any, ctx: dict[str, Any], rows: list[dict[str, Any]]) -> str | None:
    deletes = [r["eventId"] for r in rows if r["op"] == "delete" and r["extEventId"]]
    if len(deletes) < max(1, app.settings.mass_delete_min) or ctx.get("allowMassDelete"):
        return None
    kept = conn.execute(sql.COUNT_SYNCED, {"c": ctx["calendarId"], "ids": deletes}).fetchone()["n"]
    total = int(kept) + len(deletes)  # hard-deleted rows are no longer in cal_event
    if len(deletes) > app.settings.mass_delete_ratio * max(total, 1):
        return (f"app side would delete {len(deletes)} of {total} synced events "
                f"(> {app.settings.mass_delete_ratio:.0%}); deletes held back — confirm with "
                f"`autosync sync --calendar {ctx['calendarId']} --allow-mass-delete`")
    return None


def _push_one(app: Context, ctx: dict[str, Any], cal: CalendarRef, row: dict[str, Any], *,
              last_try: bool = False) -> str:
    """Push one outbox entry; transient failures wait for a later run. A refused token raises
    AuthInvalid (unless ``last_try``) so the caller can refresh it once."""
    provider = app.provider(ctx["calendarType"])
    event_id, op = row["eventId"], row["op"]
    with transaction() as conn:
        ev = sql.event_row(conn, event_id)
        shares = sql.share_attendees(conn, event_id) if ev else []
    if ev is None or not ev["status"]:
        op = "delete"
    ext_id = (ev or {}).get("extEventId") or row["extEventId"]
    record: dict[str, Any] = {"op": op, "eventId": event_id, "calendarId": ctx["calendarId"],
                              "calendarType": ctx["calendarType"], "extEventId": ext_id}
    try:
        if op == "delete":
            if ext_id:
                provider.delete(cal, ext_id)
            elif ctx["calendarType"] == 1:  # an insert that may have reached Google before the delete
                provider.delete(cal, google_event_id(ctx["calendarId"], event_id))
            result, stored = "pushDeleted", None
        else:
            assert ev is not None
            event = event_from_row(ev, shares, frozenset(row.get("removedAttendees") or ()))
            if ext_id:
                stored = _update(app, ctx, cal, ev, event)
                result = "pushUpdated"
            else:
                stored = _create(app, ctx, cal, event, event_id)
                result = "pushCreated"
    except errors.AuthInvalid:
        if not last_try:
            raise
        return _retry_later(app, ctx, row, record, errors.Transient("access token refused after a refresh"))
    except (errors.Transient, errors.Throttled, errors.RateLimited) as exc:
        return _retry_later(app, ctx, row, record, exc)
    except (errors.ProviderError, errors.NormalizeError) as exc:
        with transaction() as conn:
            conn.execute(sql.DONE, {"o": row["outboxId"], "changed": row["changedAt"], "outcome": "failed",
                                    "error": _text(exc)})
            sql.log_push(conn, ctx["userId"], {**record, "outcome": "failed", "error": _text(exc)})
        log.error("push failed", extra={"calendar": ctx["calendarId"], "event": event_id, "error": _text(exc)})
        return "pushFailed"
    except Exception as exc:  # a row we cannot turn into a push must not block the rows after it
        log.exception("push crashed", extra={"calendar": ctx["calendarId"], "event": event_id})
        with transaction() as conn:
            conn.execute(sql.DONE, {"o": row["outboxId"], "changed": row["changedAt"], "outcome": "failed",
                                    "error": f"internal error: {_text(exc)}"})
            sql.log_push(conn, ctx["userId"], {**record, "outcome": "failed", "error": _text(exc)})
        return "pushFailed"
    with transaction() as conn:
        if stored is not None:
            kept = stored.pop("columns", None)
            conn.execute(sql.STORE_PUSHED, {"e": event_id, **stored})
            if kept:
                sql.store_columns(conn, event_id, kept, row["outboxId"], row["changedAt"])
            record["extEventId"] = stored["ext"]
        conn.execute(sql.DONE, {"o": row["outboxId"], "changed": row["changedAt"], "outcome": "ok", "error": None})
        sql.log_push(conn, ctx["userId"], {**record, "outcome": "ok"})
    return result


def _retry_later(app: Context, ctx: dict[str, Any], row: dict[str, Any], record: dict[str, Any],
                 exc: BaseException) -> str:
    """Leave the entry pending with a backoff; a later run pushes it (import is never blocked)."""
    delay = getattr(exc, "retry_after", None) or getattr(exc, "wait", None) or \
        backoff(int(row["attempts"]) + 2, app.settings.task_backoff_cap)
    with transaction() as conn:
        conn.execute(sql.RETRY_LATER, {"o": row["outboxId"], "error": _text(exc), "delay": max(1.0, delay)})
        sql.log_push(conn, ctx["userId"], {**record, "outcome": "retry", "error": _text(exc)})
    return "pushFailed"


def _text(exc: BaseException) -> str:
    """The error text stored on the outbox entry and in temp_log: scrubbed of tokens and secrets."""
    return describe(exc, context().settings.secrets())


def _stored(app: Context, ctx: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
    """What to keep of the provider's answer: id, etag, raw, and the hash of its normalized form."""
    from autosync.store.events import attendees_json

    event = _normalize(ctx["calendarType"], raw)
    return {"ext": event.ext_id, "etag": event.etag, "raw": _json(raw), "hash": event.content_hash(),
            "updated": event.updated, "html": event.html_link or None, "attendees": attendees_json(event)}


def _normalize(kind: int, raw: dict[str, Any]) -> Event:
    if kind == 1:
        from autosync.normalize.google import event_from_google

        return event_from_google(raw)
    from autosync.normalize.outlook import event_from_graph

    return event_from_graph(raw)


def _json(value: Any) -> str:
    return json.dumps(value, default=str)


def _create(app: Context, ctx: dict[str, Any], cal: CalendarRef, event: Event, event_id: int) -> dict[str, Any]:
    if ctx["calendarType"] == 1:
        from autosync.normalize.google_write import google_body

        raw = app.google.create(cal, google_body(event), idempotency_key=google_event_id(ctx["calendarId"], event_id))
    else:
        from autosync.normalize.outlook_write import graph_body

        raw = app.outlook.create(cal, graph_body(event), idempotency_key=transaction_id(ctx["calendarId"], event_id))
    return _stored(app, ctx, raw)


def _update(app: Context, ctx: dict[str, Any], cal: CalendarRef, row: dict[str, Any], event: Event) -> dict[str, Any]:
    """Patch only what the app changed since the last sync; provider-side extras are kept."""
    old_raw = row["providerData"] or {}
    base = _normalize(ctx["calendarType"], old_raw) if old_raw else None
    # A NULL zone on the row means the app left the zone alone (its times are UTC), not "changed to none":
    # counting it would re-send start/end and undo a provider-side move.
    changed = {f for f in APP_FIELDS if base is None or (getattr(event, f) != getattr(base, f) and not (
        f in ("start_tz", "end_tz") and getattr(event, f) is None))}
    if not changed:
        return _stored(app, ctx, old_raw) | {"ext": row["extEventId"]}
    event = replace(event, ext_id=row["extEventId"])
    if ctx["calendarType"] == 1:
        from autosync.normalize.google_write import google_patch

        body = google_patch(old_raw, event, changed, base=base)
        try:
            raw = app.google.update(cal, row["extEventId"], body)
        except errors.NotFound:  # gone at the provider while the app edited it: the app's edit wins
            from autosync.normalize.google_write import google_body

            raw = app.google.create(cal, google_body(event), idempotency_key=google_event_id(
                ctx["calendarId"], row["eventId"]) + "r" + str(int(datetime.now(UTC).timestamp())))
    else:
        from autosync.normalize.outlook_write import graph_body

        body = _graph_patch(graph_body(event), old_raw, event, base, changed)
        try:
            raw = app.outlook.update(cal, row["extEventId"], body)
        except errors.NotFound:
            raw = app.outlook.create(cal, graph_body(event), idempotency_key=str(uuid.uuid4()))
    return _stored(app, ctx, raw) | {"columns": _provider_kept(ctx["calendarType"], raw, event, changed)}


# Event fields -> the cal_event columns holding them (storage rule of migration 0001).
FIELD_COLUMNS = {"summary": ("eventName",), "description": ("description",), "location": ("location",),
                 "all_day": ("linkAllDay", "startDate", "startTime", "endDate", "endTime"),
                 "start": ("startDate", "startTime"), "end": ("endDate", "endTime"), "recurrence": ("recurrence",),
                 "reminders": ("reminders", "remindersUseDefault"),
                 "reminders_use_default": ("reminders", "remindersUseDefault"),
                 "conference": ("conferenceType", "conferenceUri", "conferenceData"),
                 "attachments": ("attachments",)}


def _provider_kept(kind: int, raw: dict[str, Any], event: Event, changed: set[str]) -> dict[str, Any]:
    """Columns the row must take from the provider's answer: changes made there to fields the app did not touch.

    The PATCH keeps them on the provider; when a conflict drops the provider's version from the import
    (the app won), the row would otherwise keep the old values while its contentHash says it is current.
    """
    from autosync.store.events import COLUMNS, row_of

    theirs = _normalize(kind, raw)
    values = dict(zip(COLUMNS, row_of(theirs), strict=True))
    kept: dict[str, Any] = {}
    for name, columns in FIELD_COLUMNS.items():
        if name not in changed and getattr(theirs, name) != getattr(event, name):
            kept.update({c: values[c] for c in columns})
    return kept


GRAPH_KEYS = {"summary": ("subject",), "description": ("body",), "location": ("location",),
              "all_day": ("isAllDay", "start", "end"), "start": ("start", "end"), "end": ("start", "end"),
              "start_tz": ("start", "end"), "end_tz": ("start", "end"), "recurrence": ("recurrence",),
              "attendees": ("attendees",), "reminders": ("reminderMinutesBeforeStart", "isReminderOn"),
              "reminders_use_default": ("reminderMinutesBeforeStart", "isReminderOn")}


def _graph_patch(full: dict[str, Any], old_raw: dict[str, Any], event: Event, base: Event | None,
                 changed: set[str]) -> dict[str, Any]:
    """Graph PATCH replaces collections whole: keep provider-only attendees the app did not remove."""
    keys = {k for f in changed for k in GRAPH_KEYS.get(f, ())}
    body = {k: full[k] for k in keys if k in full}
    if "attendees" in body:
        mine = {a["emailAddress"]["address"].lower() for a in body["attendees"]}
        removed = {a.email.lower() for a in (base.attendees if base else ())} - {a.email.lower()
                                                                                 for a in event.attendees}
        for a in old_raw.get("attendees") or []:
            email = ((a.get("emailAddress") or {}).get("address") or "").lower()
            if email and email not in mine and email not in removed:
                body["attendees"].append({"emailAddress": a.get("emailAddress"), "type": a.get("type", "required")})
    return body

"""Sync-back: push the app's inserts, updates and deletes of events on linked calendars to the provider."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import UTC, date, datetime, time
from typing import Any

from autosync import errors
from autosync.model import Attachment, Attendee, Conference, Event, Organizer, Reminder
from autosync.normalize.common import parse_utc
from autosync.providers import CalendarRef
from autosync.providers.http import backoff, counting
from autosync.redact import describe
from autosync.services import conflicts, runs
from autosync.services.context import Context, context
from autosync.services.push_rules import (
    ProviderDeleted,
    from_gmail_split,
    google_event_id,
    google_type,
    owner_zone,
    refusal_text,
    transaction_id,
    unnamed_zone,
    unsynced_type,
)
from autosync.services.runs import Next
from autosync.services.tokens import ensure_token
from autosync.store import outbox as sql
from autosync.store import runs as run_sql
from autosync.store.conflicts import RECORD as RECORD_CONFLICT
from autosync.store.db import transaction

log = logging.getLogger(__name__)

# sharedStatus of the share tables -> Google response status (2 = declined rows are never pushed).
SHARED_STATUS = {0: "needsAction", 1: "accepted", 2: "declined", 3: "tentative"}
APP_FIELDS = ("summary", "description", "location", "all_day", "start", "end", "start_tz", "end_tz",
              "recurrence", "attendees", "reminders", "reminders_use_default", "status")


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
    refused = unsynced_type(ev) if ctx["calendarType"] == 1 and ev is not None and ext_id else None
    if refused:  # never a write Google would refuse, and never a retry loop: recorded once
        return _done(ctx, row, record, "refused", refused, "pushFailed")
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
                stored = _update(app, ctx, cal, ev, event, row)
                result = "pushUpdated"
            else:
                stored = _create(app, ctx, cal, event, event_id, row)
                result = "pushCreated"
    except ProviderDeleted as gone:
        assert ev is not None
        return _provider_deleted(app, ctx, row, record, ev, gone)
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
    outcome, error = "ok", None
    with transaction() as conn:
        if stored is not None:
            kept = stored.pop("columns", None)
            refused_fields, patched = stored.pop("refused", set()), stored.pop("patched", True)
            beaten = stored.pop("conflict", None)
            conn.execute(sql.ADOPT, {"c": ctx["calendarId"], "ext": stored["ext"], "e": event_id})
            conn.execute(sql.STORE_PUSHED, {"e": event_id, **stored})
            if kept:
                sql.store_columns(conn, event_id, kept, row["outboxId"], row["changedAt"])
            if beaten is not None:  # the app's live row won over a deletion made at the provider
                conn.execute(RECORD_CONFLICT, {"c": ctx["calendarId"], "ext": beaten["id"],
                                               "policy": app.settings.conflict_policy, "winner": "app",
                                               "app": None, "provider": _json(beaten), "outbox": row["outboxId"]})
            if refused_fields:
                outcome, error = "refused", refusal_text(google_type(ev or {}), refused_fields)
                result = result if patched else "pushFailed"
            record["extEventId"] = stored["ext"]
        conn.execute(sql.DONE, {"o": row["outboxId"], "changed": row["changedAt"], "outcome": outcome,
                                "error": error})
        sql.log_push(conn, ctx["userId"], {**record, "outcome": outcome, **({"error": error} if error else {})})
    return result


def _done(ctx: dict[str, Any], row: dict[str, Any], record: dict[str, Any], outcome: str, error: str,
          result: str) -> str:
    """Close an outbox entry without a provider write (recorded in the outbox and temp_log)."""
    with transaction() as conn:
        conn.execute(sql.DONE, {"o": row["outboxId"], "changed": row["changedAt"], "outcome": outcome,
                                "error": error})
        sql.log_push(conn, ctx["userId"], {**record, "outcome": outcome, "error": error})
    log.warning("push not sent", extra={"calendar": ctx["calendarId"], "event": row["eventId"], "error": error})
    return result


def _provider_deleted(app: Context, ctx: dict[str, Any], row: dict[str, Any], record: dict[str, Any],
                      ev: dict[str, Any], gone: ProviderDeleted) -> str:
    """A create found its event deleted at Google since our first attempt made it, and the deletion
    won: the row is deleted in the app as an imported deletion would be, with both versions recorded."""
    stored = _stored(app, ctx, gone.raw, _zone_hint(ctx, ev))
    text = f"deleted at Google after autosync created it; the deletion won (policy {gone.policy})"
    with transaction() as conn:
        conn.execute(sql.ADOPT, {"c": ctx["calendarId"], "ext": stored["ext"], "e": row["eventId"]})
        conn.execute(sql.STORE_PUSHED, {"e": row["eventId"], **stored})
        conn.execute(sql.MARK_DELETED, {"e": row["eventId"], "o": row["outboxId"], "changed": row["changedAt"]})
        conn.execute(RECORD_CONFLICT, {"c": ctx["calendarId"], "ext": stored["ext"], "policy": gone.policy,
                                       "winner": "provider", "app": _json({k: v for k, v in ev.items()
                                                                          if k != "providerData"}),
                                       "provider": None, "outbox": row["outboxId"]})
        conn.execute(sql.DONE, {"o": row["outboxId"], "changed": row["changedAt"],
                                "outcome": "superseded by provider change", "error": text})
        sql.log_push(conn, ctx["userId"], {**record, "extEventId": stored["ext"], "outcome": "superseded",
                                           "error": text})
    return "superseded"


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


def _stored(app: Context, ctx: dict[str, Any], raw: dict[str, Any], zone_hint: str | None = None) -> dict[str, Any]:
    """What to keep of the provider's answer: id, etag, raw, and the hash of its normalized form."""
    from autosync.store.events import attendees_json

    event = _normalize(ctx["calendarType"], raw, zone_hint)
    return {"ext": event.ext_id, "etag": event.etag, "raw": _json(raw), "hash": event.content_hash(),
            "updated": event.updated, "html": event.html_link or None, "attendees": attendees_json(event)}


def _normalize(kind: int, raw: dict[str, Any], zone_hint: str | None = None) -> Event:
    """A provider copy as the import reads it; ``zone_hint`` is the calendar zone the import gave a
    Google event whose start names no zone (Google: such an event is in its calendar's zone)."""
    if kind == 1:
        from autosync.normalize.google import event_from_google

        return event_from_google(raw, calendar_tz=zone_hint)
    from autosync.normalize.outlook import event_from_graph

    return event_from_graph(raw)


def _zone_hint(ctx: dict[str, Any], row: dict[str, Any]) -> str | None:
    """For Google, the zone the import stored for the row: the event's own, else its calendar's.

    Reading the provider copy with it makes a zone the copy leaves unnamed equal to the row's, so it
    is neither taken for an app change (which would rewrite start/end, undoing a move made at Google
    meanwhile) nor hashed differently from what the next import computes.
    """
    return row.get("startTimeZone") if ctx["calendarType"] == 1 else None


def _json(value: Any) -> str:
    return json.dumps(value, default=str)


def _create(app: Context, ctx: dict[str, Any], cal: CalendarRef, event: Event, event_id: int,
            outbox: dict[str, Any], replacing: str | None = None) -> dict[str, Any]:
    """Create the event with a key derived from (calendar, event[, the copy it replaces]), so a
    retry whose first answer was lost finds the first attempt's event instead of making a second."""
    if ctx["calendarType"] == 1:
        from autosync.normalize.google_write import google_body

        body = google_body(event)
        raw = app.google.create(cal, body, idempotency_key=google_event_id(ctx["calendarId"], event_id, replacing))
        raw, beaten = _live_google(app, ctx, cal, body, raw, event_id, outbox)
        # Google creates a default event whatever type the row claimed: the row takes the answer's type.
        kept = {"eventType": str(raw.get("eventType") or "default")}
        return _stored(app, ctx, raw) | {"columns": kept, "conflict": beaten}
    from autosync.normalize.outlook_write import graph_body

    raw = app.outlook.create(cal, graph_body(event), idempotency_key=transaction_id(
        ctx["calendarId"], event_id, replacing))
    return _stored(app, ctx, raw)


def _live_google(app: Context, ctx: dict[str, Any], cal: CalendarRef, body: dict[str, Any], raw: dict[str, Any],
                 event_id: int, outbox: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A Google create's answer, and the deleted copy it replaced when that copy lost a conflict.

    After a 409 the adapter answers with the event that holds our id: one an earlier attempt created
    (its answer lost). Google keeps deleted events, so that event may since have been deleted there
    (https://developers.google.com/workspace/calendar/api/v3/reference/events, `status`). That is a
    conflict between the app's live row and the provider's deletion, decided by the one conflict
    policy: the deletion stands (ProviderDeleted), or the app wins and the event is created again under
    an id derived from the deleted one (Google never reuses an id, even of a deleted event).
    """
    if raw.get("status") != "cancelled":
        return raw, None
    policy = app.settings.conflict_policy
    if conflicts.winner(policy, parse_utc(raw.get("updated")), outbox["changedAt"]) == "provider":
        raise ProviderDeleted(raw, policy)
    again = app.google.create(cal, body, idempotency_key=google_event_id(ctx["calendarId"], event_id,
                                                                         replacing=str(raw["id"])))
    if again.get("status") == "cancelled":  # deleted a second time: the provider's word stands
        raise ProviderDeleted(again, policy)
    return again, raw


def _update(app: Context, ctx: dict[str, Any], cal: CalendarRef, row: dict[str, Any], event: Event,
            outbox: dict[str, Any]) -> dict[str, Any]:
    """Patch only what the app changed since the last sync; provider-side extras are kept."""
    kind, old_raw, hint = ctx["calendarType"], row["providerData"] or {}, _zone_hint(ctx, row)
    base = _normalize(kind, old_raw, hint) if old_raw else None
    # A NULL zone on the row means the app left the zone alone (its times are UTC), not "changed to none":
    # counting it would re-send start/end and undo a provider-side move.
    changed = {f for f in APP_FIELDS if base is None or (getattr(event, f) != getattr(base, f) and not (
        f in ("start_tz", "end_tz") and getattr(event, f) is None))}
    changed, refused = from_gmail_split(google_type(row), changed) if kind == 1 else (changed, set())
    extra: dict[str, Any] = {"refused": refused, "patched": bool(changed)}
    if refused and base is not None:  # what Google keeps fixed, the row takes back from the provider copy
        extra["columns"] = _columns_of(base, refused)
    if not changed:
        return _stored(app, ctx, old_raw, hint) | {"ext": row["extEventId"]} | extra
    event = replace(event, ext_id=row["extEventId"])
    zone_columns: dict[str, Any] = {}
    if kind == 2 and changed & TIME_FIELDS and base is not None and unnamed_zone(old_raw) \
            and event.start_tz in (None, base.start_tz):
        event, zone_columns = _in_owner_zone(ctx, event)
    try:
        raw = _send_update(app, ctx, cal, row, old_raw, event, base, changed)
        if raw.get("status") == "cancelled":
            # Google keeps a deleted event and takes a PATCH without restoring it. The import already
            # let this edit win over that deletion, so the event must exist again: as for a 404.
            raise errors.NotFound("the provider holds this event as deleted", status=200, code="cancelled")
    except errors.NotFound:
        # Gone at the provider while the app edited it: the app's edit wins, as a new event whose key
        # derives from the gone id, so a retry after a lost answer finds it instead of a second one.
        created = _create(app, ctx, cal, event, row["eventId"], outbox, replacing=row["extEventId"])
        return created | {"columns": created.get("columns", {}) | zone_columns}
    kept = _provider_kept(kind, raw, event, changed, hint) | zone_columns | extra.pop("columns", {})
    return _stored(app, ctx, raw, hint) | {"columns": kept} | extra


def _send_update(app: Context, ctx: dict[str, Any], cal: CalendarRef, row: dict[str, Any], old_raw: dict[str, Any],
                 event: Event, base: Event | None, changed: set[str]) -> dict[str, Any]:
    if ctx["calendarType"] == 1:
        from autosync.normalize.google_write import google_patch

        return app.google.update(cal, row["extEventId"], google_patch(old_raw, event, changed, base=base))
    from autosync.normalize.outlook_write import graph_body

    body = _graph_patch(graph_body(event, create=False), old_raw, event, base, changed)
    return app.outlook.update(cal, row["extEventId"], body)


def _in_owner_zone(ctx: dict[str, Any], event: Event) -> tuple[Event, dict[str, Any]]:
    """The event with its owner's zone, for an Outlook event whose own zone cannot be named.

    Writing the UTC label the import gave it would move the event to UTC in Outlook (its zone, and for
    a series its DST rule); the zone the owner's other events carry is the one Outlook would give it.
    Without one, the times go as UTC as before (still the right instants).
    """
    with transaction() as conn:
        zone = owner_zone(list(sql.zones_in_use(conn, ctx["calendarId"])))
    if zone is None:
        return event, {}
    return replace(event, start_tz=zone, end_tz=zone), {"startTimeZone": zone, "endTimeZone": zone}


def _columns_of(event: Event, names: set[str]) -> dict[str, Any]:
    """cal_event column values of some Event fields."""
    from autosync.store.events import COLUMNS, row_of

    values = dict(zip(COLUMNS, row_of(event), strict=True))
    return {c: values[c] for name in names for c in REVERT_COLUMNS.get(name, ())}


# Event fields -> the cal_event columns holding them (storage rule of migration 0001).
FIELD_COLUMNS = {"summary": ("eventName",), "description": ("description",), "location": ("location",),
                 "all_day": ("linkAllDay", "startDate", "startTime", "endDate", "endTime"),
                 "start": ("startDate", "startTime"), "end": ("endDate", "endTime"), "recurrence": ("recurrence",),
                 "reminders": ("reminders", "remindersUseDefault"),
                 "reminders_use_default": ("reminders", "remindersUseDefault"),
                 "conference": ("conferenceType", "conferenceUri", "conferenceData"),
                 "attachments": ("attachments",)}


# Columns a refused change is taken back in: every field the app edits.
REVERT_COLUMNS = FIELD_COLUMNS | {"attendees": ("attendees",), "start_tz": ("startTimeZone",),
                                  "end_tz": ("endTimeZone",), "status": ("status",)}
TIME_FIELDS = frozenset({"all_day", "start", "end", "start_tz", "end_tz"})


def _provider_kept(kind: int, raw: dict[str, Any], event: Event, changed: set[str],
                   zone_hint: str | None = None) -> dict[str, Any]:
    """Columns the row must take from the provider's answer: changes made there to fields the app did not touch.

    The PATCH keeps them on the provider; when a conflict drops the provider's version from the import
    (the app won), the row would otherwise keep the old values while its contentHash says it is current.
    """
    from autosync.store.events import COLUMNS, row_of

    theirs = _normalize(kind, raw, zone_hint)
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

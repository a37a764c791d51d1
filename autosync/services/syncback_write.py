"""One app change as provider writes: create, patch (only what changed) and re-creation of gone events."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from autosync import errors
from autosync.model import Event
from autosync.normalize.common import parse_utc
from autosync.providers import Adapter, CalendarRef
from autosync.services import plan
from autosync.services.context import App
from autosync.services.syncback_rules import (
    ProviderDeleted,
    google_event_id,
    owner_zone,
)
from autosync.store.runs import RunContext

APP_FIELDS = ("summary", "description", "location", "all_day", "start", "end", "start_tz", "end_tz",
              "recurrence", "attendees", "reminders", "reminders_use_default", "status")


def _json(value: Any) -> str:
    return json.dumps(value, default=str)


def stored_answer(app: App, run: RunContext, raw: dict[str, Any],
                  zone_hint: str | None = None) -> dict[str, Any]:
    """What to keep of the provider's answer: id, etag, raw, and the hash of its normalized form."""
    from autosync.store.events import attendees_json

    event = app.provider(run.calendar_type).read_event(raw, zone_hint)
    return {"ext": event.ext_id, "etag": event.etag, "raw": _json(raw), "hash": event.content_hash(),
            "updated": event.updated, "html": event.html_link or None, "attendees": attendees_json(event)}


def zone_hint(app: App, run: RunContext, row: dict[str, Any]) -> str | None:
    """The zone the import stored for the row where the provider copy may leave it unnamed (Google).

    Reading the provider copy with it makes a zone the copy leaves unnamed equal to the row's, so it
    is neither taken for an app change (which would rewrite start/end, undoing a move made at Google
    meanwhile) nor hashed differently from what the next import computes.
    """
    return app.provider(run.calendar_type).zone_hint(row)


def create(app: App, run: RunContext, cal: CalendarRef, event: Event, event_id: int,
           outbox: dict[str, Any], replacing: str | None = None) -> dict[str, Any]:
    """Create the event with a key derived from (calendar, event[, the copy it replaces]), so a
    retry whose first answer was lost finds the first attempt's event instead of making a second."""
    provider = app.provider(run.calendar_type)
    body = provider.create_body(event)
    raw = provider.create(cal, body, idempotency_key=provider.create_key(run.calendar_id, event_id, replacing))
    if not provider.keeps_deleted:
        return stored_answer(app, run, raw) | {"columns": _edited_since(provider, raw, event)}
    raw, beaten = _live_copy(app, run, cal, body, raw, event_id, outbox)
    # Google creates a default event whatever type the row claimed: the row takes the answer's type.
    kept = {"eventType": str(raw.get("eventType") or "default")} | _edited_since(provider, raw, event)
    return stored_answer(app, run, raw) | {"columns": kept, "conflict": beaten}


def _edited_since(provider: Adapter, raw: dict[str, Any], event: Event) -> dict[str, Any]:
    """Columns the row must take from a create's answer that differs from what was sent.

    A retried create (its first answer lost: a killed worker, a timeout) gets back the event the first
    attempt made, which the user may have edited at the provider since. Its answer is stored as the
    synced copy, so without this the row would keep the old values for good while looking in sync.
    That edit is newer than the app's change being pushed, so it wins as an import would make it.
    """
    return _provider_kept(provider, raw, event, set())


def _live_copy(app: App, run: RunContext, cal: CalendarRef, body: dict[str, Any], raw: dict[str, Any],
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
    if plan.winner(policy, parse_utc(raw.get("updated")), outbox["changedAt"]) == "provider":
        raise ProviderDeleted(raw, policy)
    again = app.google.create(cal, body, idempotency_key=google_event_id(run.calendar_id, event_id,
                                                                         replacing=str(raw["id"])))
    if again.get("status") == "cancelled":  # deleted a second time: the provider's word stands
        raise ProviderDeleted(again, policy)
    return again, raw


def update(app: App, run: RunContext, cal: CalendarRef, row: dict[str, Any], event: Event,
           outbox: dict[str, Any]) -> dict[str, Any]:
    """Patch only what the app changed since the last sync; provider-side extras are kept."""
    provider, old_raw, hint = app.provider(run.calendar_type), row["providerData"] or {}, zone_hint(app, run, row)
    base = provider.read_event(old_raw, hint) if old_raw else None
    # A NULL zone on the row means the app left the zone alone (its times are UTC), not "changed to none":
    # counting it would re-send start/end and undo a provider-side move.
    changed = {f for f in APP_FIELDS if base is None or (getattr(event, f) != getattr(base, f) and not (
        f in ("start_tz", "end_tz") and getattr(event, f) is None))}
    changed, refused = provider.writable(row, changed)
    extra: dict[str, Any] = {"refused": refused, "patched": bool(changed)}
    if refused and base is not None:  # what Google keeps fixed, the row takes back from the provider copy
        extra["columns"] = _columns_of(base, refused)
    if not changed:
        return stored_answer(app, run, old_raw, hint) | {"ext": row["extEventId"]} | extra
    event = replace(event, ext_id=row["extEventId"])
    zone_columns: dict[str, Any] = {}
    if changed & TIME_FIELDS and base is not None and provider.zone_unnamed(old_raw) \
            and event.start_tz in (None, base.start_tz):
        event, zone_columns = _in_owner_zone(app, run, event)
    try:
        raw = _send_update(app, run, cal, row, old_raw, event, base, changed)
        if raw.get("status") == "cancelled":
            # Google keeps a deleted event and takes a PATCH without restoring it. The import already
            # let this edit win over that deletion, so the event must exist again: as for a 404.
            raise errors.NotFound("the provider holds this event as deleted", status=200, code="cancelled")
    except errors.NotFound:
        # Gone at the provider while the app edited it: the app's edit wins, as a new event whose key
        # derives from the gone id, so a retry after a lost answer finds it instead of a second one.
        created = create(app, run, cal, event, row["eventId"], outbox, replacing=row["extEventId"])
        return created | {"columns": created.get("columns", {}) | zone_columns}
    kept = _provider_kept(provider, raw, event, changed, hint) | zone_columns | extra.pop("columns", {})
    return stored_answer(app, run, raw, hint) | {"columns": kept} | extra


def _send_update(app: App, run: RunContext, cal: CalendarRef, row: dict[str, Any], old_raw: dict[str, Any],
                 event: Event, base: Event | None, changed: set[str]) -> dict[str, Any]:
    provider = app.provider(run.calendar_type)
    return provider.update(cal, row["extEventId"], provider.patch_body(old_raw, event, changed, base))


def _in_owner_zone(app: App, run: RunContext, event: Event) -> tuple[Event, dict[str, Any]]:
    """The event with its owner's zone, for an Outlook event whose own zone cannot be named.

    Writing the UTC label the import gave it would move the event to UTC in Outlook (its zone, and for
    a series its DST rule); the zone the owner's other events carry is the one Outlook would give it.
    Without one, the times go as UTC as before (still the right instants).
    """
    with app.store.unit() as tx:
        zone = owner_zone(list[str | None](tx.zones_in_use(run.calendar_id)))
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


def _provider_kept(provider: Adapter, raw: dict[str, Any], event: Event, changed: set[str],
                   zone_hint: str | None = None) -> dict[str, Any]:
    """Columns the row must take from the provider's answer: changes made there to fields the app did not touch.

    The PATCH keeps them on the provider; when a conflict drops the provider's version from the import
    (the app won), the row would otherwise keep the old values while its contentHash says it is current.
    """
    from autosync.store.events import COLUMNS, row_of

    theirs = provider.read_event(raw, zone_hint)
    values = dict(zip(COLUMNS, row_of(theirs), strict=True))
    kept: dict[str, Any] = {}
    for name, columns in FIELD_COLUMNS.items():
        if name not in changed and getattr(theirs, name) != getattr(event, name):
            kept.update({c: values[c] for c in columns})
    return kept

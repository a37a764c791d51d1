"""An in-memory store: the data a run's steps read and write, kept in dicts, with a record of what happened.

It implements `store.api.Tx` with the semantics of the PostgreSQL statements (content-hash skips,
tombstones, run-wide deletions, the outbox's compare-and-set), so the services' pull and sync-back
logic can be tested without a database. Outlook's staged-page query (series checks) is not modelled.
It also plays the app: `app_insert`, `app_update` and `app_delete` write rows and queue outbox
entries as the database trigger does.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from autosync.model import AppChange, Event, Provider, Skipped
from autosync.store.api import Store
from autosync.store.events import COLUMNS, Encoded, Upserted, row_of
from autosync.store.runs import RunContext

Row = dict[str, Any]
_JSON = ("attendees", "attachments", "reminders", "providerData", "conferenceData")
_COUNTS = {"upserted": "eventsUpserted", "unchanged": "eventsUnchanged", "deleted": "eventsDeleted",
           "skipped": "eventsSkipped", "conflicts": "conflicts"}


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Data:
    calendars: dict[int, Row] = field(default_factory=dict)
    events: dict[int, Row] = field(default_factory=dict)
    outbox: dict[int, Row] = field(default_factory=dict)
    runs: dict[int, Row] = field(default_factory=dict)
    pages: dict[int, Row] = field(default_factory=dict)
    seen: dict[int, set[str]] = field(default_factory=dict)
    pending_deletes: dict[int, list[str]] = field(default_factory=dict)
    conflicts: list[Row] = field(default_factory=list)
    skips: list[Row] = field(default_factory=list)
    push_log: list[Row] = field(default_factory=list)
    notices: list[Row] = field(default_factory=list)
    channels: dict[str, Row] = field(default_factory=dict)


class MemoryTx:
    """One unit of work on the in-memory data (applied as it goes; a failed unit is rolled back)."""

    def __init__(self, store: MemoryStore) -> None:
        self.s = store
        self.d = store.data

    def _did(self, what: str, **details: Any) -> None:
        self.s.log.append((what, details))

    @contextmanager
    def rollback_after(self, dry: bool) -> Iterator[None]:
        saved = copy.deepcopy(self.d) if dry else None
        yield
        if saved is not None:
            self.s.data = self.d = saved

    # --- runs ---------------------------------------------------------------------------------------

    def run_context(self, run_id: int) -> RunContext | None:
        r = self.d.runs.get(run_id)
        if r is None:
            return None
        c = self.d.calendars[r["calendarId"]]
        return RunContext(
            run_id=run_id, calendar_id=c["calendarId"], finished_at=r["finishedAt"], full_sync=r["fullSync"],
            page_cursor=r["pageCursor"], window_start=r["windowStart"], window_end=r["windowEnd"],
            allow_mass_delete=r["allowMassDelete"], dry_run=r["dryRun"], user_id=c["userId"],
            calendar_type=Provider(c["calendarType"]), ext_calendar_id=c["extCalendarId"],
            social_account_id=c["socialAccountId"], token=c["token"], refresh_token=c["refreshToken"],
            token_expires_at=c["accessTokenExpirationDate"], delta_link=c["deltaLink"],
            sync_window_start=c["syncWindowStart"], sync_window_end=c["syncWindowEnd"],
            calendar_active=c["status"], last_page_checks=False,
            pending_deletes=bool(self.d.pending_deletes.get(run_id)), empty_at_start=bool(r.get("emptyAtStart")))

    def due(self, types: Sequence[int], *, user_id: int | None, calendar_ids: Sequence[int] | None, push: bool,
            quiet: bool, renew_before: int, safety_poll: int) -> list[Row]:
        return [{"calendarId": c["calendarId"], "calendarType": c["calendarType"], "userId": c["userId"],
                 "accessTokenExpirationDate": c["accessTokenExpirationDate"], "has_token": c["token"] is not None,
                 "watch_due": False}
                for c in self.d.calendars.values() if c["status"] and c["calendarType"] in types
                and (user_id is None or c["userId"] == user_id)
                and (calendar_ids is None or c["calendarId"] in calendar_ids)]

    def _open_run(self, calendar_id: int) -> Row | None:
        return next((r for r in self.d.runs.values() if r["calendarId"] == calendar_id and not r["finishedAt"]),
                    None)

    def start_runs(self, calendar_ids: Sequence[int], *, reason: str, request_id: int | None, rerun: bool,
                   coalesce: bool) -> tuple[list[Row], list[Row]]:
        created, coalesced = [], []
        for cid in calendar_ids:
            running = self._open_run(cid)
            if running is None:
                run_id = self.s.open_run(cid, reason=reason)
                created.append({"runId": run_id, "calendarId": cid})
            elif coalesce:
                running["rerunRequested"] = running["rerunRequested"] or rerun or running["dryRun"]
                coalesced.append({"runId": running["runId"], "calendarId": cid})
        return created, coalesced

    def mark_dry_run(self, run_ids: list[int]) -> None:
        for run_id in run_ids:
            self.d.runs[run_id]["dryRun"] = True

    def allow_mass_delete(self, calendar_ids: list[int]) -> None:
        for r in self.d.runs.values():
            if r["calendarId"] in calendar_ids and not r["finishedAt"]:
                r["allowMassDelete"] = True

    def set_request_pending(self, request_id: int, pending: int) -> None:
        self._did("request pending", request=request_id, pending=pending)

    def claim_fan_out(self, scope: str, interval: float) -> float | None:
        return None

    def fan_out_runs(self, scope: str, runs: int) -> None:
        self._did("fan-out", scope=scope, runs=runs)

    def stale_runs(self, stale_after: int) -> list[Row]:
        return []

    def first_staged_page(self, run_id: int) -> int | None:
        return min((p for p, v in self.d.pages.items() if v["runId"] == run_id), default=None)

    def touch(self, run_id: int, step: str, requests: int = 0) -> None:
        r = self.d.runs[run_id]
        r["step"], r["providerRequests"] = step, r["providerRequests"] + requests

    def progress(self, run_id: int, step: str, cursor: str | None, requests: int, counts: dict[str, int]) -> None:
        r = self.d.runs[run_id]
        self.touch(run_id, step, requests)
        r["pageCursor"] = cursor
        for key, column in _COUNTS.items():
            r[column] += counts.get(key, 0)

    def finish_run(self, run_id: int, outcome: str, error: str | None, requests: int,
                   counts: dict[str, int]) -> Row | None:
        r = self.d.runs.get(run_id)
        if r is None or r["finishedAt"] is not None:
            return None
        self.progress(run_id, "done", None, requests, counts)
        r.update(outcome=outcome, error=error, finishedAt=_now())
        c = self.d.calendars[r["calendarId"]]
        if not r["dryRun"]:
            c.update(lastOutcome=outcome, lastError=error)
        self._did("finish", run=run_id, outcome=outcome)
        return {**r, "userId": c["userId"], "calendarType": c["calendarType"]}

    def add_requests(self, run_id: int, n: int) -> None:
        self.d.runs[run_id]["providerRequests"] += n

    def deactivate_calendar_of_run(self, run_id: int, reason: str) -> None:
        self.d.calendars[self.d.runs[run_id]["calendarId"]].update(status=False, deactivatedReason=reason)

    def clean_run(self, run_id: int) -> None:
        self.d.seen.pop(run_id, None)
        self.d.pending_deletes.pop(run_id, None)
        for page_id in [p for p, v in self.d.pages.items() if v["runId"] == run_id]:
            del self.d.pages[page_id]

    def settle_requests(self, request_ids: list[int], failed: bool) -> list[Row]:
        return []

    def notify(self, user_id: int, kind: str, payload: dict[str, Any]) -> None:
        self.d.notices.append({"notificationId": next(self.s.ids), "userId": user_id, "kind": kind,
                               "payload": payload, "createdAt": _now(), "deliveredAt": None, "attempts": 0})

    def claim_notices(self, limit: int) -> list[Row]:
        return [n for n in self.d.notices if n.get("deliveredAt") is None][:limit]

    def notices_sent(self, ids: list[int], *, delivered: bool) -> None:
        for n in self.d.notices:
            if n["notificationId"] in ids:
                n["attempts"] += 1
                n["deliveredAt"] = _now() if delivered else None

    def claim_lease(self, key: str, holder: str, ttl: float) -> bool:
        held = self.s.leases.get(key)
        if held and held[1] > _now():
            return False
        self.s.leases[key] = (holder, _now() + timedelta(seconds=ttl))
        return True

    def release_lease(self, key: str, holder: str) -> None:
        if self.s.leases.get(key, ("", None))[0] == holder:
            del self.s.leases[key]

    def read_token(self, calendar_id: int) -> Row:
        c = self.d.calendars[calendar_id]
        return {"token": c["token"], "refreshToken": c["refreshToken"],
                "accessTokenExpirationDate": c["accessTokenExpirationDate"],
                "known_dead": c.get("needsReauth", False), "reauthReason": c.get("reauthReason")}

    def _account(self, run: RunContext) -> list[Row]:
        return [c for c in self.d.calendars.values() if c["calendarType"] == run.calendar_type
                and c["userId"] == run.user_id and (c["socialAccountId"] == run.social_account_id
                                                     if run.social_account_id else c["calendarId"] == run.calendar_id)]

    def save_token(self, run: RunContext, token: str, expires: datetime, refresh: str | None) -> None:
        for c in self._account(run):
            c.update(token=token, accessTokenExpirationDate=expires, needsReauth=False, reauthReason=None)
            if refresh:
                c["refreshToken"] = refresh
        self._did("token saved", calendar=run.calendar_id)

    def mark_needs_reauth(self, run: RunContext, reason: str) -> list[int]:
        for c in self._account(run):
            c.update(needsReauth=True, reauthReason=reason)
        return [c["calendarId"] for c in self._account(run)]

    def set_watch_error(self, calendar_id: int, error: str | None, *, lasting: bool = False) -> None:
        self.d.calendars[calendar_id]["watchError"] = error

    def live_channels(self, calendar_id: int) -> list[Row]:
        return [dict(c) for c in self.d.channels.values() if c["calendarId"] == calendar_id and not c["stopped"]]

    def stop_channels(self, channel_ids: list[str]) -> None:
        for channel_id in channel_ids:
            if channel_id in self.d.channels:
                self.d.channels[channel_id]["stopped"] = True

    def channel_renewed(self, channel_id: str, expires: datetime) -> None:
        self.d.channels[channel_id]["expiresAt"] = expires

    def add_channel(self, run: RunContext, *, channel_id: str, calendar_id: int | None, resource_id: str | None,
                    secret_hash: bytes, expires: datetime) -> None:
        self.d.channels[channel_id] = {"channelId": channel_id, "calendarId": calendar_id,
                                       "resourceId": resource_id, "expiresAt": expires, "stopped": False}

    def channel_due_now(self, channel_id: str) -> None:
        self.d.channels[channel_id]["expiresAt"] = _now()

    def calendars_of_channel(self, channel_id: str) -> list[int]:
        ch = self.d.channels.get(channel_id)
        return [ch["calendarId"]] if ch and ch["calendarId"] is not None else []

    def orphaned_channels(self, channel_id: str | None = None) -> list[Row]:
        return []

    def start_rerun(self, calendar_id: int, request_ids: list[int]) -> Row | None:
        if self._open_run(calendar_id):
            return None
        return {"runId": self.s.open_run(calendar_id, reason="rerun"), "new": True}

    def begin_full(self, run_id: int, window: tuple[datetime, datetime]) -> bool:
        run = self.d.runs[run_id]
        empty = not any(e.get("extEventId") for e in self._rows(run["calendarId"]))
        run.update(fullSync=True, pageCursor=None, windowStart=window[0], windowEnd=window[1], emptyAtStart=empty)
        self.d.seen.pop(run_id, None)
        self.d.pending_deletes.pop(run_id, None)
        return empty

    def claim_cursor(self, run_id: int, cursor: str | None) -> bool:
        run = self.d.runs.get(run_id)
        return run is not None and not run["finishedAt"] and run["pageCursor"] == cursor

    def bump_pages(self, run_id: int, n: int) -> None:
        run = self.d.runs[run_id]
        run["pagesFetched"] = run.get("pagesFetched", 0) + n

    def outlook_state(self, calendar_id: int, run_id: int, named: Sequence[str], removed: Sequence[str],
                      final: bool) -> dict[str, Any]:
        raise NotImplementedError("the in-memory store models Google calendars only")

    def record_series_listed(self, run_id: int, listed: dict[str, dict[str, Any]]) -> None:
        raise NotImplementedError("the in-memory store models Google calendars only")

    def series_masters(self, run_id: int) -> list[str]:
        raise NotImplementedError("the in-memory store models Google calendars only")

    def series_listed(self, run_id: int, masters: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        raise NotImplementedError("the in-memory store models Google calendars only")

    def drop_cursor(self, calendar_id: int) -> None:
        self.d.calendars[calendar_id]["deltaLink"] = None
        self._did("drop cursor", calendar=calendar_id)

    def commit_cursor(self, calendar_id: int, cursor: str, window: tuple[datetime | None, datetime | None]) -> None:
        self.d.calendars[calendar_id].update(deltaLink=cursor, lastSyncDate=_now(), syncWindowStart=window[0],
                                             syncWindowEnd=window[1])

    def stage_page(self, run_id: int, body: dict[str, Any], next_cursor: str | None, final: bool) -> int | None:
        r = self.d.runs[run_id]
        r["pagesFetched"] += 1
        page_id = next(self.s.ids)
        self.d.pages[page_id] = {"runId": run_id, "body": copy.deepcopy(body), "nextCursor": next_cursor,
                                 "isFinal": final}
        return page_id

    def load_page(self, run_id: int, page_id: int) -> Row | None:
        page = self.d.pages.get(page_id)
        return dict(page) if page and page["runId"] == run_id else None

    def load_outlook_page(self, calendar_id: int, run_id: int, page_id: int) -> Row | None:
        raise NotImplementedError("Outlook pages (series checks) are not modelled in memory")

    def drop_page(self, page_id: int) -> bool:
        return self.d.pages.pop(page_id, None) is not None

    def push_due(self, calendar_id: int) -> bool:
        return any(o["calendarId"] == calendar_id and o["doneAt"] is None and o["nextAttemptAt"] <= _now()
                   for o in self.d.outbox.values())

    def watch_due(self, calendar_id: int, renew_before: int) -> bool:
        return False

    def add_push_counts(self, run_id: int, counts: dict[str, int]) -> None:
        r = self.d.runs[run_id]
        for key, n in counts.items():
            r[key] += n

    def record_skips(self, run_id: int, calendar_id: int, skipped: Sequence[Skipped]) -> None:
        self.d.skips += [{"runId": run_id, "calendarId": calendar_id, "extEventId": s.ext_id, "reason": s.reason}
                         for s in skipped]

    # --- events -------------------------------------------------------------------------------------

    def _rows(self, calendar_id: int, *, live: bool = True) -> list[Row]:
        return [e for e in self.d.events.values() if e["calendarId"] == calendar_id and (e["status"] or not live)]

    def _by_ext(self, calendar_id: int, ext_id: str) -> Row | None:
        return next((e for e in self.d.events.values() if e["calendarId"] == calendar_id
                     and e["extEventId"] == ext_id), None)

    def record_seen(self, run_id: int, ext_ids: Sequence[str]) -> None:
        self.d.seen.setdefault(run_id, set()).update(ext_ids)

    def stale_instances(self, calendar_id: int, master_id: str, keep: Sequence[str]) -> list[str]:
        return [e["extEventId"] for e in self._rows(calendar_id)
                if e["recurringEventId"] == master_id and e["extEventId"] not in keep]

    def unseen(self, calendar_id: int, run_id: int, since: date) -> list[str]:
        seen = self.d.seen.get(run_id, set())
        return [e["extEventId"] for e in self._rows(calendar_id) if e["extEventId"]
                and (e["endDate"] or e["startDate"]) is not None and (e["endDate"] or e["startDate"]) >= since
                and e["extEventId"] not in seen]

    def take_pending_deletes(self, run_id: int) -> list[str]:
        return self.d.pending_deletes.pop(run_id, [])

    def pend_deletes(self, run_id: int, ext_ids: Sequence[str]) -> None:
        pending = self.d.pending_deletes.setdefault(run_id, [])
        pending += [x for x in ext_ids if x not in pending]

    def unpend_deletes(self, run_id: int, ext_ids: Sequence[str]) -> None:
        if run_id in self.d.pending_deletes:
            self.d.pending_deletes[run_id] = [x for x in self.d.pending_deletes[run_id] if x not in ext_ids]

    def count_deletable(self, calendar_id: int, ext_ids: Sequence[str]) -> int:
        return sum(1 for e in self._rows(calendar_id) if e["extEventId"] in ext_ids
                   or e["recurringEventId"] in ext_ids)

    def count_live(self, calendar_id: int) -> int:
        return len(self._rows(calendar_id))

    def upsert(self, calendar_id: int, user_id: int, events: Sequence[Event],
               encoded: Encoded | None = None, *, fresh: bool = False) -> Upserted:
        out = Upserted()
        for event in events:
            values = _columns(event)
            row = self._by_ext(calendar_id, event.ext_id)
            if row is None:
                self.s.add_row(calendar_id, user_id, values, sync=True)
                out.inserted += 1
            elif row["contentHash"] != values["contentHash"] or row["status"] != values["status"]:
                row.update(values, syncedAt=_now())
                out.updated += 1
            else:
                out.unchanged += 1
        if out.inserted or out.updated:
            self._did("upsert", calendar=calendar_id, inserted=out.inserted, updated=out.updated)
        return out

    def cancel_instances(self, calendar_id: int, user_id: int, events: Sequence[Event]) -> int:
        n = 0
        for event in events:
            row = self._by_ext(calendar_id, event.ext_id)
            if row is None:
                self.s.add_row(calendar_id, user_id, {"extEventId": event.ext_id, "status": False,
                                                      "recurringEventId": event.recurring_event_id,
                                                      "eventStatus": "cancelled",
                                                      "contentHash": event.content_hash()}, sync=True)
                n += 1
            elif row["status"] or row["contentHash"] != event.content_hash():
                row.update(status=False, eventStatus="cancelled", contentHash=event.content_hash())
                n += 1
        return n

    def delete_events(self, calendar_id: int, ext_ids: Sequence[str]) -> int:
        n = 0
        for e in self._rows(calendar_id):
            if e["extEventId"] in ext_ids or e["recurringEventId"] in ext_ids:
                e.update(status=False, eventStatus="cancelled", syncedAt=_now())
                n += 1
        if n:
            self._did("delete", calendar=calendar_id, rows=n)
        return n

    def drop_hints(self, calendar_id: int, ext_ids: list[str]) -> None:
        return None

    # --- conflicts ----------------------------------------------------------------------------------

    def app_changes(self, calendar_id: int, ext_ids: Sequence[str]) -> list[AppChange]:
        out = []
        for o in self.d.outbox.values():
            row = self.d.events.get(o["eventId"])
            ext = (row or {}).get("extEventId") or o["extEventId"]
            if o["calendarId"] == calendar_id and o["doneAt"] is None and ext in ext_ids:
                out.append(AppChange(ext, o["outboxId"], o["op"], o["changedAt"], row["contentHash"] if row else None,
                                     {k: v for k, v in row.items() if k != "providerData"} if row else None))
        return out

    def record_conflict(self, calendar_id: int, ext_id: str, *, policy: str, winner: str, app: str | None,
                        provider: str | None, outbox_id: int) -> None:
        self.d.conflicts.append({"calendarId": calendar_id, "extEventId": ext_id, "policy": policy,
                                 "winner": winner, "appVersion": app, "providerVersion": provider,
                                 "outboxId": outbox_id})

    def supersede(self, outbox_id: int) -> None:
        self.d.outbox[outbox_id].update(doneAt=_now(), outcome="superseded by provider change")

    # --- sync-back ----------------------------------------------------------------------------------

    def pending_pushes(self, calendar_id: int) -> list[Row]:
        return [dict(o) for _, o in sorted(self.d.outbox.items()) if o["calendarId"] == calendar_id
                and o["doneAt"] is None and o["nextAttemptAt"] <= _now()]

    def count_deletes(self, calendar_id: int) -> dict[str, int]:
        deletes = {o["eventId"] for o in self.pending_pushes(calendar_id) if o["op"] == "delete" and o["extEventId"]}
        kept = sum(1 for e in self._rows(calendar_id) if e["extEventId"] and e["eventId"] not in deletes)
        return {"deletes": len(deletes), "kept": kept}

    def event_row(self, event_id: int) -> Row | None:
        row = self.d.events.get(event_id)
        return copy.deepcopy(row) if row else None

    def share_attendees(self, event_id: int) -> list[Row]:
        return []

    def close_push(self, outbox_id: int, changed_at: datetime, outcome: str, error: str | None) -> None:
        o = self.d.outbox[outbox_id]
        o["attempts"] += 1
        o["lastError"] = error
        if o["changedAt"] == changed_at:
            o.update(doneAt=_now(), outcome=outcome)

    def retry_push_later(self, outbox_id: int, error: str, delay: float) -> None:
        o = self.d.outbox[outbox_id]
        o.update(attempts=o["attempts"] + 1, lastError=error, nextAttemptAt=_now() + timedelta(seconds=delay))

    def log_push(self, user_id: int, data: dict[str, Any]) -> None:
        self.d.push_log.append({"userId": user_id, "data": json.loads(json.dumps(data, default=str))})

    def adopt(self, calendar_id: int, ext_id: str, event_id: int) -> None:
        for other in [e for e in self.d.events.values() if e["calendarId"] == calendar_id
                      and e["extEventId"] == ext_id and e["eventId"] != event_id]:
            del self.d.events[other["eventId"]]
            for o in self.d.outbox.values():
                if o["eventId"] == other["eventId"] and o["doneAt"] is None:
                    o.update(doneAt=_now(), outcome="merged into the app row that created it")

    def store_pushed(self, event_id: int, stored: dict[str, Any]) -> None:
        row = self.d.events[event_id]
        row.update(extEventId=stored["ext"], extEtag=stored["etag"], providerData=json.loads(stored["raw"]),
                   attendees=json.loads(stored["attendees"]), contentHash=stored["hash"],
                   extUpdatedAt=stored["updated"], htmlLink=stored.get("html") or row.get("htmlLink"),
                   syncedAt=_now())

    def store_columns(self, event_id: int, columns: dict[str, Any], outbox_id: int, changed_at: datetime) -> None:
        if self.d.outbox[outbox_id]["changedAt"] == changed_at:
            self.d.events[event_id].update(columns)

    def mark_deleted(self, event_id: int, outbox_id: int, changed_at: datetime) -> None:
        if self.d.outbox[outbox_id]["changedAt"] == changed_at:
            self.d.events[event_id].update(status=False, eventStatus="cancelled")

    def zones_in_use(self, calendar_id: int) -> list[str]:
        return []


def _columns(event: Event) -> Row:
    values = dict(zip(COLUMNS, row_of(event), strict=True))
    for key in _JSON:
        if isinstance(values.get(key), str):
            values[key] = json.loads(values[key])
    return values


class MemoryStore:
    """The store in memory; ``log`` records what the steps did, ``data`` is what they left."""

    def __init__(self) -> None:
        self.data = _Data()
        self.log: list[tuple[str, dict[str, Any]]] = []
        self.ids = itertools.count(1)
        self.leases: dict[str, tuple[str, datetime]] = {}

    @contextmanager
    def unit(self, *, timeout: float | None = None, origin_sync: bool = True) -> Iterator[MemoryTx]:
        """One unit of work: on an exception everything it did is undone, as a rolled-back transaction.

        ``timeout`` and ``origin_sync`` mean nothing in memory (no pool to wait for, no outbox trigger)."""
        saved = copy.deepcopy(self.data)
        try:
            yield MemoryTx(self)
        except BaseException:
            self.data = saved
            raise

    def encode(self, events: Sequence[Event]) -> None:
        """Nothing to build ahead in memory: rows are dicts made at write time."""
        return None

    # --- the app's side, and set-up ----------------------------------------------------------------

    def add_calendar(self, calendar_type: int, *, user_id: int = 1, ext_calendar_id: str, account: str,
                     token: str | None, expires: datetime | None, refresh_token: str | None = None) -> int:
        """A linked calendar with a fresh access token."""
        cid = next(self.ids)
        self.data.calendars[cid] = {
            "calendarId": cid, "calendarType": calendar_type, "userId": user_id, "extCalendarId": ext_calendar_id,
            "socialAccountId": account, "token": token, "refreshToken": refresh_token,
            "accessTokenExpirationDate": expires,
            "deltaLink": None, "syncWindowStart": None, "syncWindowEnd": None, "status": True,
            "lastOutcome": None, "lastError": None, "lastSyncDate": None}
        return cid

    def open_run(self, calendar_id: int, *, reason: str = "adhoc", allow_mass_delete: bool = False,
                 dry_run: bool = False) -> int:
        """A new run of the calendar."""
        run_id = next(self.ids)
        self.data.runs[run_id] = {
            "runId": run_id, "calendarId": calendar_id, "reason": reason, "step": "queued", "outcome": None,
            "error": None, "fullSync": False, "pageCursor": None, "pagesFetched": 0, "windowStart": None,
            "windowEnd": None, "allowMassDelete": allow_mass_delete, "dryRun": dry_run, "finishedAt": None,
            "startedAt": _now(), "rerunRequested": False, "requestIds": [], "providerRequests": 0,
            **{column: 0 for column in _COUNTS.values()},
            "pushCreated": 0, "pushUpdated": 0, "pushDeleted": 0, "pushFailed": 0}
        return run_id

    def add_row(self, calendar_id: int, user_id: int, values: Row, *, sync: bool) -> int:
        """A cal_event row (``sync``: autosync's own write, no outbox entry)."""
        event_id = next(self.ids)
        row: Row = {c: None for c in COLUMNS} | {"attendees": [], "attachments": [], "reminders": [],
                                                 "linkAllDay": False, "remindersUseDefault": False,
                                                 "status": True, "eventType": "default"}
        row.update(values, eventId=event_id, calendarId=calendar_id, createdBy=user_id, syncedAt=_now())
        self.data.events[event_id] = row
        if not sync:
            self._queue(row, "insert")
        return event_id

    def _queue(self, row: Row, op: str) -> None:
        pending = next((o for o in self.data.outbox.values() if o["eventId"] == row["eventId"]
                        and o["doneAt"] is None), None)
        if pending is not None:
            pending.update(op=op if op == "delete" or pending["op"] != "insert" else "insert", changedAt=_now(),
                           extEventId=row["extEventId"])
            return
        outbox_id = next(self.ids)
        self.data.outbox[outbox_id] = {
            "outboxId": outbox_id, "eventId": row["eventId"], "calendarId": row["calendarId"], "op": op,
            "extEventId": row["extEventId"], "changedAt": _now(), "doneAt": None, "attempts": 0,
            "nextAttemptAt": _now() - timedelta(seconds=1), "removedAttendees": [], "outcome": None,
            "lastError": None}

    def app_insert(self, calendar_id: int, **values: Any) -> int:
        """The app creates an event (queued for sync-back)."""
        user = self.data.calendars[calendar_id]["userId"]
        return self.add_row(calendar_id, user, values, sync=False)

    def app_update(self, event_id: int, **values: Any) -> None:
        """The app edits an event (queued for sync-back)."""
        row = self.data.events[event_id]
        row.update(values)
        self._queue(row, "update" if row["status"] else "delete")

    def app_delete(self, event_id: int) -> None:
        """The app deletes the row (queued for sync-back)."""
        row = self.data.events.pop(event_id)
        self._queue(row, "delete")

    def live(self, calendar_id: int) -> dict[str, Row]:
        """Live rows of a calendar by provider id."""
        return {e["extEventId"]: e for e in self.data.events.values()
                if e["calendarId"] == calendar_id and e["status"]}


def _conforms(store: MemoryStore) -> Store:
    """Type check only: the in-memory store is a `Store` (mypy compares it with the protocol)."""
    return store

"""Two-way convergence property: random app-side and Google-side edits, a sync after each, never diverge.

A Hypothesis state machine applies creates, updates and deletes on both sides (including a recurring
series and changes to one of its instances, edits of one event on both sides between two syncs, and
listings that carry an item autosync must skip: nested too deep, wrong types, bad times) and runs a
real sync through the worker after every step. The invariant: live Google events and live
cal_event rows match one to one by id, with the same summary, start and end.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import requests
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tests.e2e.helpers import Linked, link, sync
from tests.e2e.test_pushback_google import app_delete, app_insert, app_move, app_update, at, g_moment
from tests.payloads import google_hostile

Snapshot = dict[str, tuple[str, datetime, datetime]]
OFFSETS = st.integers(min_value=1, max_value=9)
HOURS = st.integers(min_value=6, max_value=20)
MINUTES = st.sampled_from([30, 60, 90])
_accounts = itertools.count(1)


def provider_snapshot(emu: Any, cal: Linked) -> Snapshot:
    """Live Google events (series masters, singles and modified instances) as id -> (summary, start, end)."""
    stored = emu.google_list(cal.ext_calendar_id)
    cancelled = {e["id"] for e in stored if e.get("status") == "cancelled"}
    out: Snapshot = {}
    for e in stored:
        if e["id"] in cancelled or e.get("recurringEventId") in cancelled:
            continue
        start, end = g_moment(e["start"]), g_moment(e["end"])
        assert isinstance(start, datetime) and isinstance(end, datetime)
        out[e["id"]] = (e.get("summary", ""), start, end)
    return out


def app_snapshot(db: psycopg.Connection, cal: Linked) -> Snapshot:
    """Live cal_event rows of the calendar as extEventId -> (eventName, start, end); unpushed rows fail."""
    rows = db.execute('SELECT "extEventId", "eventName", "startDate", "startTime", "endDate", "endTime" '
                      'FROM cal_event WHERE "calendarId" = %s AND status', (cal.calendar_id,)).fetchall()
    out: Snapshot = {}
    for ext, name, sd, st_, ed, et in rows:
        assert ext is not None, f"live row {name!r} was never pushed"
        assert ext not in out, f"duplicate row for {ext}"
        out[ext] = (name or "", datetime.combine(sd, st_, UTC), datetime.combine(ed, et, UTC))
    return out


class Convergence(RuleBasedStateMachine):
    """App and Google edit one calendar; a sync follows every step."""

    db: psycopg.Connection
    emu: Any

    def __init__(self) -> None:
        super().__init__()
        self.names = itertools.count(1)
        self.cal: Linked | None = None

    def _name(self, prefix: str) -> str:
        return f"{prefix}{next(self.names)}"

    def _sync(self) -> None:
        assert self.cal is not None
        runs = sync(self.cal.user_id)["runs"]
        assert all(r["outcome"] == "ok" and r["pushFailed"] == 0 for r in runs), runs

    def _app_live(self) -> list[tuple[int, str, str | None]]:
        assert self.cal is not None
        return [(int(r[0]), r[1], r[2]) for r in self.db.execute(
            'SELECT "eventId", "extEventId", "recurringEventId" FROM cal_event WHERE "calendarId" = %s '
            'AND status ORDER BY "eventId"', (self.cal.calendar_id,)).fetchall()]

    def _masters(self) -> list[dict[str, Any]]:
        assert self.cal is not None
        return [e for e in self.emu.google_list(self.cal.ext_calendar_id)
                if e.get("recurrence") and e.get("status") != "cancelled"]

    @initialize()
    def start(self) -> None:
        self.cal = link(self.db, self.emu, "google", f"prop{next(_accounts)}@example.com")
        app_insert(self.db, self.cal, "Series", at(1, 7), at(1, 7, 30), recurrence=["RRULE:FREQ=DAILY;COUNT=4"])
        self._sync()

    # --- app side ---------------------------------------------------------------------------

    @rule(offset=OFFSETS, hour=HOURS, minutes=MINUTES, recurring=st.booleans())
    def app_creates(self, offset: int, hour: int, minutes: int, recurring: bool) -> None:
        assert self.cal is not None
        start = at(offset, hour)
        extra = {"recurrence": ["RRULE:FREQ=DAILY;COUNT=3"]} if recurring else {}
        app_insert(self.db, self.cal, self._name("app"), start, start + timedelta(minutes=minutes), **extra)
        self._sync()

    @rule(pick=st.integers(min_value=0), shift=st.integers(min_value=-2, max_value=2), rename=st.booleans())
    def app_updates(self, pick: int, shift: int, rename: bool) -> None:
        live = self._app_live()
        if live:
            event_id = live[pick % len(live)][0]
            self._app_edit(event_id, shift, rename)
        self._sync()

    def _app_edit(self, event_id: int, shift: int, rename: bool) -> None:
        cols = {"eventName": self._name("app-upd")} if rename or not shift else {}
        if shift:
            found = self.db.execute('SELECT "startDate", "startTime", "endDate", "endTime" FROM cal_event '
                                    'WHERE "eventId" = %s', (event_id,)).fetchone()
            assert found is not None
            sd, st_, ed, et = found
            delta = timedelta(hours=shift)
            app_move(self.db, event_id, datetime.combine(sd, st_, UTC) + delta,
                     datetime.combine(ed, et, UTC) + delta, **cols)
        else:
            app_update(self.db, event_id, **cols)

    @rule(pick=st.integers(min_value=0), hard=st.booleans())
    def app_deletes(self, pick: int, hard: bool) -> None:
        live = self._app_live()
        if live:
            event_id = live[pick % len(live)][0]
            if hard:
                app_delete(self.db, event_id)
            else:
                app_update(self.db, event_id, status=False)
        self._sync()

    # --- Google side ------------------------------------------------------------------------

    @rule(offset=OFFSETS, hour=HOURS, minutes=MINUTES)
    def google_creates(self, offset: int, hour: int, minutes: int) -> None:
        assert self.cal is not None
        start = at(offset, hour)
        self.emu.google_insert(self.cal.ext_calendar_id, {
            "summary": self._name("g"), "start": {"dateTime": start.isoformat(), "timeZone": "Europe/Berlin"},
            "end": {"dateTime": (start + timedelta(minutes=minutes)).isoformat(), "timeZone": "Europe/Berlin"}})
        self._sync()

    @rule(pick=st.integers(min_value=0), shift=st.integers(min_value=-2, max_value=2), rename=st.booleans())
    def google_updates(self, pick: int, shift: int, rename: bool) -> None:
        assert self.cal is not None
        live = sorted(provider_snapshot(self.emu, self.cal).items())
        if live:
            ext, (_, start, end) = live[pick % len(live)]
            self._google_edit(ext, start, end, shift, rename)
        self._sync()

    def _google_edit(self, ext: str, start: datetime, end: datetime, shift: int, rename: bool) -> None:
        assert self.cal is not None
        patch: dict[str, Any] = {"summary": self._name("g-upd")} if rename or not shift else {}
        if shift:
            delta = timedelta(hours=shift)
            patch |= {"start": {"dateTime": (start + delta).isoformat(), "timeZone": "UTC"},
                      "end": {"dateTime": (end + delta).isoformat(), "timeZone": "UTC"}}
        self.emu.google_patch(self.cal.ext_calendar_id, ext, patch)

    @rule(pick=st.integers(min_value=0))
    def google_deletes(self, pick: int) -> None:
        assert self.cal is not None
        live = sorted(provider_snapshot(self.emu, self.cal))
        if live:
            self.emu.google_delete(self.cal.ext_calendar_id, live[pick % len(live)])
        self._sync()

    @rule(pick=st.integers(min_value=0), occurrence=st.integers(min_value=1, max_value=2), cancel=st.booleans())
    def google_changes_one_instance(self, pick: int, occurrence: int, cancel: bool) -> None:
        assert self.cal is not None
        masters = self._masters()
        if masters:
            master = masters[pick % len(masters)]
            first = g_moment(master["start"])
            assert isinstance(first, datetime)
            slot = first + timedelta(days=occurrence)
            instance = f"{master['id']}_{slot.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}"
            try:
                if cancel:
                    self.emu.google_delete(self.cal.ext_calendar_id, instance)
                else:
                    self.emu.google_patch(self.cal.ext_calendar_id, instance, {"summary": self._name("inst")})
            except requests.HTTPError as exc:  # that occurrence is cancelled already
                assert exc.response is not None and exc.response.status_code in (404, 410), exc
        self._sync()

    @rule(item=google_hostile("hostile", deepest=800))
    def google_lists_a_hostile_item(self, item: dict[str, Any]) -> None:
        """The next listing carries one item autosync must skip (too deep, wrong types, bad times…)."""
        assert self.cal is not None
        token = self.db.execute('SELECT "deltaLink" FROM calendar WHERE "calendarId" = %s',
                                (self.cal.calendar_id,)).fetchone()
        assert token is not None and token[0], "an incremental listing is needed: a full one would delete"
        self.emu.add_fault(provider="google", endpoint="google.events.list", count=1, status=200,
                           body={"kind": "calendar#events", "items": [item], "nextSyncToken": token[0]})
        before = self.db.execute("SELECT count(*) FROM sync_skip WHERE \"extEventId\" = 'hostile'").fetchone()
        self._sync()
        after = self.db.execute("SELECT count(*) FROM sync_skip WHERE \"extEventId\" = 'hostile'").fetchone()
        assert before is not None and after is not None and after[0] == before[0] + 1

    # --- both sides between two syncs ---------------------------------------------------------

    @rule(pick=st.integers(min_value=0), app_shift=st.integers(min_value=0, max_value=1),
          google_shift=st.integers(min_value=0, max_value=1), app_first=st.booleans())
    def both_sides_edit_one_event(self, pick: int, app_shift: int, google_shift: int, app_first: bool) -> None:
        assert self.cal is not None
        live = [(e, x) for e, x, _ in self._app_live()]
        prov = provider_snapshot(self.emu, self.cal)
        shared = [(e, x) for e, x in live if x in prov]
        if shared:
            event_id, ext = shared[pick % len(shared)]
            _, start, end = prov[ext]
            edits = [lambda: self._app_edit(event_id, app_shift, True),
                     lambda: self._google_edit(ext, start, end, google_shift, True)]
            for edit in edits if app_first else reversed(edits):
                edit()
        self._sync()

    # --- the property -------------------------------------------------------------------------

    @invariant()
    def both_sides_match(self) -> None:
        if self.cal is None:
            return
        provider, app = provider_snapshot(self.emu, self.cal), app_snapshot(self.db, self.cal)
        assert sorted(provider) == sorted(app), {"only_provider": sorted(set(provider) - set(app)),
                                                 "only_app": sorted(set(app) - set(provider))}
        differ = {k: (provider[k], app[k]) for k in provider if provider[k] != app[k]}
        assert not differ, differ


def test_app_and_google_edits_always_converge(worker, db, emu) -> None:
    Convergence.db = db
    Convergence.emu = emu
    # Small and derandomized for CI (about 10 s); raise max_examples locally to search harder.
    machine = settings(max_examples=5, stateful_step_count=8, deadline=None, derandomize=True,
                       suppress_health_check=list(HealthCheck))(Convergence)
    machine.TestCase().runTest()

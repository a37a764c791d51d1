"""Two-way convergence property: random app-side and Google-side edits, a sync after each, never diverge.

A Hypothesis state machine applies creates, updates and deletes on both sides (including a recurring
series and changes to one of its instances, edits of one event on both sides between two syncs, and
listings that carry an item autosync must skip: nested too deep, wrong types, bad times) and runs a
real sync through the worker after every step. The invariant: live Google events and live
cal_event rows match one to one by id, with the same summary, start and end.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
import requests
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from tests.e2e.helpers import Linked, link, sync
from tests.e2e.test_push_notifications import _settle, hooks  # noqa: F401  (hooks: a fixture)
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


# --- Outlook: the provider quirks of issue 19 ------------------------------------------------------------

OUTLOOK_ZONES = ["South Africa Standard Time", "E. Australia Standard Time", "US Mountain Standard Time",
                 "Tonga Standard Time", "UTC"]  # UTC+2, +10, -7, +13 and UTC, none with daylight saving
Cancelled = dict[str, set[date]]


def outlook_snapshot(emu: Any, cal: Linked) -> tuple[dict[str, str], Cancelled]:
    """Live Outlook items (singles, masters, exceptions) as id -> subject, and each master's cancelled days."""
    from urllib.parse import quote

    stored = emu.outlook("GET", f"/calendars/{quote(cal.ext_calendar_id, safe='')}/events")["value"]
    live = {e["id"]: e for e in stored if not e["deleted"]}
    subjects = {i: e["props"]["subject"] for i, e in live.items()}
    cancelled: Cancelled = {}
    for i, e in live.items():
        if e["kind"] == "seriesMaster":
            # A slot is kept as its UTC instant; all-day slots are floating days read as UTC.
            cancelled[i] = {(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=s)).date() for s in e["cancelled"]}
    return subjects, cancelled


def outlook_app_snapshot(db: psycopg.Connection, cal: Linked) -> tuple[dict[str, str], Cancelled]:
    """Live rows as extEventId -> eventName, and per live master the days of its cancelled instances."""
    rows = db.execute('SELECT "extEventId", "eventName", status, "recurringEventId", "originalStartDate", '
                      '"originalStartTime", recurrence IS NOT NULL FROM cal_event WHERE "calendarId" = %s',
                      (cal.calendar_id,)).fetchall()
    live = {ext: name or "" for ext, name, status, *_ in rows if status}
    assert all(ext is not None for ext in live), "a live row was never pushed"
    cancelled: Cancelled = {ext: set() for ext, _, status, _, _, _, master in rows if status and master}
    for _, _, status, parent, day, moment, _ in rows:
        if not status and parent in cancelled:
            # Timed originals are stored in UTC, as the emulator keeps them.
            cancelled[parent].add(day if moment is None else datetime.combine(day, moment, UTC).date())
    return live, cancelled


class OutlookConvergence(RuleBasedStateMachine):
    """Outlook (own or shared calendar, masters listed or not) and the app edit; a sync after every step.

    With ``notified`` the worker is subscribed to change notifications and Graph deletes occurrences
    silently (no delta round shows them): the notification's hint must carry the deletion.
    """

    db: psycopg.Connection
    emu: Any
    notified = False

    def __init__(self) -> None:
        super().__init__()
        self.names = itertools.count(1)
        self.cal: Linked | None = None

    def _name(self, prefix: str) -> str:
        return f"{prefix}{next(self.names)}"

    def _sync(self) -> None:
        assert self.cal is not None
        if self.notified:  # let the notifications land (and the runs they start finish) first
            _settle(self.emu, self.db, 0.05)
        runs = [r for r in sync(self.cal.user_id)["runs"] if r["calendarId"] == self.cal.calendar_id]
        assert runs and all(r["outcome"] == "ok" and r["pushFailed"] == 0 for r in runs), runs
        if self.notified:
            _settle(self.emu, self.db, 0.05)

    def _items(self, kind: str | None = None) -> list[dict[str, Any]]:
        from urllib.parse import quote

        assert self.cal is not None
        stored = self.emu.outlook("GET", f"/calendars/{quote(self.cal.ext_calendar_id, safe='')}/events")["value"]
        return sorted((e for e in stored if not e["deleted"] and (kind is None or e["kind"] == kind)),
                      key=lambda e: e["id"])

    def _create(self, body: dict[str, Any]) -> None:
        from urllib.parse import quote

        assert self.cal is not None
        self.emu.outlook("POST", f"/calendars/{quote(self.cal.ext_calendar_id, safe='')}/events", body)

    @initialize(shared=st.booleans(), masters=st.sampled_from(["all", "started_in_window", "none"]),
                zone=st.sampled_from(OUTLOOK_ZONES), all_day=st.booleans())
    def start(self, shared: bool, masters: str, zone: str, all_day: bool) -> None:
        n = next(_accounts)
        self.emu.outlook("POST", "/config", {"delta_masters": masters, "silent_occurrence_deletes": self.notified})
        # A subscription covers the subscriber's own mailbox only: a shared calendar is not notified.
        if shared and not self.notified:
            owner = self.emu.create_account("outlook", f"owner{n}@contoso.com")
            me = link(self.db, self.emu, "outlook", f"oprop{n}@example.com")
            self.emu.outlook("POST", f"/calendars/{owner['calendar_id']}/share", {"account_id": me.account_id})
            found = self.db.execute(
                'INSERT INTO calendar ("userId", "calendarType", "extCalendarId", "socialAccountId", '
                '"refreshToken", status) VALUES (%s, 2, %s, %s, %s, true) RETURNING "calendarId"',
                (me.user_id, owner["calendar_id"], me.account_id, me.refresh_token)).fetchone()
            assert found is not None
            self.cal = Linked(me.user_id, found[0], me.account_id, owner["calendar_id"], me.refresh_token)
        else:
            self.cal = link(self.db, self.emu, "outlook", f"oprop{n}@example.com")
        self.outlook_creates_series(1, zone, all_day)  # a series from the start, as in the Google machine

    # --- Outlook side -------------------------------------------------------------------------

    @rule(offset=OFFSETS, hour=HOURS)
    def outlook_creates_single(self, offset: int, hour: int) -> None:
        start = at(offset, hour)
        self._create({"subject": self._name("o"), "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"),
                                                            "timeZone": "UTC"},
                      "end": {"dateTime": (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"),
                              "timeZone": "UTC"}})
        self._sync()

    @rule(offset=st.integers(min_value=-40, max_value=9), zone=st.sampled_from(OUTLOOK_ZONES),
          all_day=st.booleans())
    def outlook_creates_series(self, offset: int, zone: str, all_day: bool) -> None:
        first = at(offset, 0).date()  # from 40 days back: some began before the window
        times = (("T00:00:00", "T00:00:00", timedelta(days=1)) if all_day else ("T09:00:00", "T09:30:00", timedelta()))
        self._create({"subject": self._name("series"), "isAllDay": all_day,
                      "start": {"dateTime": f"{first}{times[0]}", "timeZone": zone},
                      "end": {"dateTime": f"{first + times[2]}{times[1]}", "timeZone": zone},
                      "recurrence": {"pattern": {"type": "weekly", "interval": 1,
                                                 "daysOfWeek": [first.strftime("%A").lower()]},
                                     "range": {"type": "numbered", "startDate": first.isoformat(),
                                               "numberOfOccurrences": 10}}})
        self._sync()

    @rule(pick=st.integers(min_value=0), which=st.integers(min_value=0, max_value=9), cancel=st.booleans())
    def outlook_changes_one_occurrence(self, pick: int, which: int, cancel: bool) -> None:
        from urllib.parse import quote

        masters = self._items("seriesMaster")
        if masters:
            master = masters[pick % len(masters)]
            low = datetime.fromisoformat(master["start"][:10]).replace(tzinfo=UTC) - timedelta(days=2)
            found = self.emu.outlook("GET", f"/events/{quote(master['id'], safe='')}/instances?startDateTime="
                                            f"{low:%Y-%m-%dT%H:%M:%SZ}&endDateTime="
                                            f"{low + timedelta(days=80):%Y-%m-%dT%H:%M:%SZ}")["value"]
            plain = sorted((i for i in found if i["type"] == "occurrence"), key=lambda i: i["start"]["dateTime"])
            in_window = [i for i in plain if i["start"]["dateTime"][:10] >= at(-20, 0).date().isoformat()]
            if in_window:
                target = in_window[which % len(in_window)]["id"]
                if cancel:
                    self.emu.outlook("DELETE", f"/events/{quote(target, safe='')}")
                else:
                    self.emu.outlook("PATCH", f"/events/{quote(target, safe='')}", {"subject": self._name("exc")})
        self._sync()

    @rule(pick=st.integers(min_value=0), delete=st.booleans())
    def outlook_changes_an_item(self, pick: int, delete: bool) -> None:
        from urllib.parse import quote

        items = self._items()
        if items:
            target = quote(items[pick % len(items)]["id"], safe="")
            if delete:
                self.emu.outlook("DELETE", f"/events/{target}")
            else:
                self.emu.outlook("PATCH", f"/events/{target}", {"subject": self._name("o-upd")})
        self._sync()

    @rule(masters=st.sampled_from(["all", "started_in_window", "none"]), full=st.booleans())
    def graph_changes_how_it_lists_masters(self, masters: str, full: bool) -> None:
        assert self.cal is not None
        self.emu.outlook("POST", "/config", {"delta_masters": masters})
        if full:
            self.emu.invalidate_cursors(self.cal.ext_calendar_id)
        self._sync()

    # --- app side -------------------------------------------------------------------------------

    @rule(offset=OFFSETS, hour=HOURS)
    def app_creates(self, offset: int, hour: int) -> None:
        assert self.cal is not None
        start = at(offset, hour)
        app_insert(self.db, self.cal, self._name("app"), start, start + timedelta(minutes=45))
        self._sync()

    @rule(pick=st.integers(min_value=0), delete=st.booleans())
    def app_changes_a_row(self, pick: int, delete: bool) -> None:
        assert self.cal is not None
        # Deleting a whole series from the app is left out: its exceptions' rows stay until the next
        # run pulls their removal (the push comes after the run's fetch), one sync later than here.
        live = [(int(r[0]), bool(r[1])) for r in self.db.execute(
            'SELECT "eventId", recurrence IS NOT NULL FROM cal_event WHERE "calendarId" = %s AND status '
            'AND "extEventId" IS NOT NULL ORDER BY "eventId"', (self.cal.calendar_id,)).fetchall()]
        if live:
            event_id, series = live[pick % len(live)]
            if delete and not series:
                app_update(self.db, event_id, status=False)
            else:
                app_update(self.db, event_id, eventName=self._name("app-upd"))
        self._sync()

    # --- the property ---------------------------------------------------------------------------

    @invariant()
    def both_sides_match(self) -> None:
        if self.cal is None:
            return
        (provider, p_cancelled), (app, a_cancelled) = (outlook_snapshot(self.emu, self.cal),
                                                       outlook_app_snapshot(self.db, self.cal))
        assert sorted(provider) == sorted(app), {"only_outlook": sorted(set(provider) - set(app)),
                                                 "only_app": sorted(set(app) - set(provider))}
        assert {k: v for k, v in provider.items() if app[k] != v} == {}
        # Every cancelled occurrence inside the window is cancelled in the app too, and nothing else.
        low = at(-27, 0).date()
        for master, days in p_cancelled.items():
            assert {d for d in days if d >= low} == {d for d in a_cancelled.get(master, set()) if d >= low}, master


def _outlook_settings(examples: int) -> settings:
    return settings(max_examples=examples, stateful_step_count=8, deadline=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))


def test_outlook_quirks_and_app_edits_always_converge(worker, db, emu) -> None:
    OutlookConvergence.db, OutlookConvergence.emu = db, emu
    run_state_machine_as_test(OutlookConvergence, settings=_outlook_settings(5))


class NotifiedOutlookConvergence(OutlookConvergence):
    """The same, subscribed to notifications, with occurrences deleted silently."""

    notified = True


@pytest.mark.usefixtures("hooks")
def test_outlook_silent_occurrence_deletes_converge_through_notifications(db, emu) -> None:
    NotifiedOutlookConvergence.db, NotifiedOutlookConvergence.emu = db, emu
    run_state_machine_as_test(NotifiedOutlookConvergence, settings=_outlook_settings(3))

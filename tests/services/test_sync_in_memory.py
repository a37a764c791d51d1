"""Pull and sync-back logic on the in-memory store: no PostgreSQL, no Celery, no worker.

The services run step by step in this process, against the real Google adapter and the provider
emulator over HTTP (fast), with `store.memory.MemoryStore` holding what PostgreSQL would. Covers
what otherwise needs the end-to-end suite: tombstones, the 410 resync, the run-wide mass-delete
guard, conflicts, echo suppression, sync-back and the dry run.
"""

from __future__ import annotations

import time as time_mod
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from autosync.model import Provider, Step
from autosync.services import pull, syncback
from autosync.services.context import App, build
from autosync.services.runs import Next
from autosync.settings import get_settings
from autosync.store.memory import MemoryStore

STEPS = {Step.FETCH: pull.fetch_step, Step.IMPORT: pull.import_step, Step.PUSH: syncback.push_step,
         Step.TOKEN: pull.token_step}


@dataclass
class World:
    app: App
    store: MemoryStore
    emu: Any
    calendar_id: int
    ext_calendar_id: str

    def run(self, **options: bool) -> dict[str, Any]:
        """One whole run of the calendar, its steps chained here as the tasks would; the run's row."""
        run_id = self.store.open_run(self.calendar_id, **options)
        nxt = Next(Step.FETCH, run_id)
        for _ in range(100):
            if nxt.step == Step.DONE:
                break
            fn = STEPS[nxt.step]
            nxt = fn(self.app, nxt.run_id, nxt.page_id) if nxt.step == Step.IMPORT else fn(self.app, nxt.run_id)
        return self.store.data.runs[run_id]

    def live(self) -> dict[str, dict[str, Any]]:
        return self.store.live(self.calendar_id)

    def insert(self, summary: str, day: int) -> str:
        d = (datetime.now(UTC) + timedelta(days=day)).date().isoformat()
        return str(self.emu.google_insert(self.ext_calendar_id, {
            "summary": summary, "start": {"dateTime": f"{d}T09:00:00Z"}, "end": {"dateTime": f"{d}T10:00:00Z"}})["id"])


@pytest.fixture()
def world(emu: Any, limits_redis: Any) -> Iterator[World]:
    app = build(replace(get_settings(), google_page_size=5))
    acct = emu.create_account("google", "mem@example.com")
    grant = app.google.refresh(acct["refresh_token"])
    store = MemoryStore()
    cid = store.add_calendar(Provider.GOOGLE, ext_calendar_id=acct["calendar_id"], account=acct["account_id"],
                             token=grant.access_token, expires=grant.expires_at)
    yield World(replace(app, store=store), store, emu, cid, acct["calendar_id"])


def test_first_run_imports_then_an_unchanged_calendar_costs_one_request_and_writes_nothing(world: World) -> None:
    ids = [world.insert(f"E{i}", i + 1) for i in range(7)]
    first = world.run()
    assert first["outcome"] == "ok" and first["fullSync"] and first["eventsUpserted"] == 7
    assert set(world.live()) == set(ids) and world.store.data.calendars[world.calendar_id]["deltaLink"]
    world.store.log.clear()
    again = world.run()
    assert again["outcome"] == "ok" and again["providerRequests"] == 1 and not again["fullSync"]
    assert [what for what, _ in world.store.log] == ["finish"]


def test_a_provider_deletion_is_a_tombstone_not_a_removed_row(world: World) -> None:
    keep, gone = world.insert("Keep", 1), world.insert("Gone", 2)
    world.run()
    world.emu.google_delete(world.ext_calendar_id, gone)
    run = world.run()
    assert run["outcome"] == "ok" and run["eventsDeleted"] == 1
    assert set(world.live()) == {keep}
    tombstone = next(e for e in world.store.data.events.values() if e["extEventId"] == gone)
    assert tombstone["status"] is False and tombstone["eventStatus"] == "cancelled"


def test_an_invalid_cursor_drops_it_relists_and_tombstones_what_was_not_seen(world: World) -> None:
    a, b = world.insert("A", 1), world.insert("B", 2)
    world.run()
    # The provider forgets the cursor (410) and, meanwhile, B went without a tombstone reaching us.
    world.emu.invalidate_cursors(world.ext_calendar_id)
    world.store.data.events[next(e["eventId"] for e in world.store.data.events.values()
                                 if e["extEventId"] == a)]["contentHash"] = "stale"
    world.emu.google_delete(world.ext_calendar_id, b)
    run = world.run()
    assert run["outcome"] == "ok" and run["fullSync"]
    assert ("drop cursor", {"calendar": world.calendar_id}) in world.store.log
    assert set(world.live()) == {a} and world.live()[a]["contentHash"] != "stale"


def test_the_guard_decides_over_the_whole_run_before_any_delete(world: World) -> None:
    ids = [world.insert(f"E{i}", 1 + i % 20) for i in range(20)]
    world.run()
    for ext in ids[:12]:  # three pages of deletions, each under the minimum
        world.emu.google_delete(world.ext_calendar_id, ext)
    blocked = world.run()
    assert blocked["outcome"] == "blocked" and "12 of 20" in blocked["error"] and blocked["pagesFetched"] >= 3
    assert len(world.live()) == 20 and not [w for w, _ in world.store.log if w == "delete"]
    dry = world.run(dry_run=True)
    assert dry["outcome"] == "blocked" and dry["eventsDeleted"] == 12 and len(world.live()) == 20
    ok = world.run(allow_mass_delete=True)
    assert ok["outcome"] == "ok" and ok["eventsDeleted"] == 12 and set(world.live()) == set(ids[12:])


def test_app_and_provider_edit_the_same_event_the_later_edit_wins_and_the_loser_is_kept(world: World) -> None:
    ext = world.insert("Original", 3)
    world.run()
    event_id = world.live()[ext]["eventId"]
    world.store.app_update(event_id, eventName="App edit")
    # Google writes `updated` to the millisecond: without a pause the provider's edit could carry a
    # time earlier than the app's (same millisecond, truncated), and the app's would win.
    time_mod.sleep(0.005)
    world.emu.google_patch(world.ext_calendar_id, ext, {"summary": "Provider edit"})  # later than the app's
    run = world.run()
    assert run["conflicts"] == 1
    (conflict,) = world.store.data.conflicts
    assert conflict["winner"] == "provider" and "App edit" in conflict["appVersion"]
    assert world.live()[ext]["eventName"] == "Provider edit"
    assert run["pushUpdated"] == 0  # the app's push was superseded


def test_an_app_event_is_pushed_once_and_its_echo_is_neither_imported_nor_a_conflict(world: World) -> None:
    world.run()
    day = (datetime.now(UTC) + timedelta(days=4)).date()
    event_id = world.store.app_insert(world.calendar_id, eventName="From the app", startDate=day,
                                      startTime=time(9), endDate=day, endTime=time(10))
    pushed = world.run()
    assert pushed["pushCreated"] == 1 and pushed["outcome"] == "ok"
    ext = world.store.data.events[event_id]["extEventId"]
    assert ext and world.emu.google_get(world.ext_calendar_id, ext)["summary"] == "From the app"
    assert all(o["doneAt"] is not None for o in world.store.data.outbox.values())
    echo = world.run()  # the provider lists our own create back
    assert (echo["eventsUpserted"], echo["conflicts"], echo["pushCreated"]) == (0, 0, 0)
    assert list(world.live()) == [ext] and world.store.data.conflicts == []


def test_app_deleting_most_events_is_held_back_by_the_same_guard(world: World) -> None:
    ids = [world.insert(f"E{i}", 1 + i) for i in range(12)]
    world.run()
    for ext in ids[:11]:
        world.store.app_delete(world.live()[ext]["eventId"])
    run = world.run()
    assert run["outcome"] == "blocked" and "app side would delete 11 of 12" in run["error"]
    assert run["pushDeleted"] == 0 and len(world.emu.google_list(world.ext_calendar_id)) >= 12
    done = world.run(allow_mass_delete=True)
    assert done["outcome"] == "ok" and done["pushDeleted"] == 11


def test_a_stale_token_is_refreshed_once_under_the_lease_and_saved(world: World) -> None:
    acct = world.emu.create_account("google", "stale@example.com")
    cid = world.store.add_calendar(Provider.GOOGLE, ext_calendar_id=acct["calendar_id"], account=acct["account_id"],
                                   token=None, expires=None, refresh_token=acct["refresh_token"])
    run_id = world.store.open_run(cid)
    nxt = pull.token_step(world.app, run_id)
    assert nxt.step == Step.FETCH
    cal = world.store.data.calendars[cid]
    assert cal["token"] and cal["accessTokenExpirationDate"] and world.store.leases == {}
    assert [w for w, _ in world.store.log].count("token saved") == 1


def test_a_revoked_grant_puts_the_account_into_needs_reauth_with_a_notice(world: World) -> None:
    from autosync import errors

    acct = world.emu.create_account("google", "gone@example.com")
    world.emu.revoke(acct["account_id"])
    cid = world.store.add_calendar(Provider.GOOGLE, ext_calendar_id=acct["calendar_id"], account=acct["account_id"],
                                   token=None, expires=None, refresh_token=acct["refresh_token"])
    with pytest.raises(errors.AuthRevoked):
        pull.token_step(world.app, world.store.open_run(cid))
    assert world.store.data.calendars[cid]["needsReauth"] is True and world.store.leases == {}
    assert [n["kind"] for n in world.store.data.notices] == ["needs_reauth"]


def test_a_dry_runs_conflict_is_reported_on_the_run_but_not_counted_in_the_metrics(world: World,
                                                                                  limits_redis: Any) -> None:
    ext = world.insert("Original", 3)
    world.run()
    world.store.app_update(world.live()[ext]["eventId"], eventName="App edit")
    world.emu.google_patch(world.ext_calendar_id, ext, {"summary": "Provider edit"})

    def counted() -> int:
        return sum(int(v) for k, v in limits_redis.hgetall("autosync:metrics").items()
                   if k.decode().startswith("conflicts_total|"))

    before = counted()
    dry = world.run(dry_run=True)
    assert dry["conflicts"] == 1 and counted() == before  # nothing happened, so nothing is counted
    assert world.live()[ext]["eventName"] == "App edit"
    assert world.run()["conflicts"] == 1 and counted() == before + 1

"""The pure import and sync-back plan (services/plan.py): conflicts, echo suppression, tombstones,
run-wide deletions and push actions, table-driven and as properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autosync.model import AppChange, Event
from autosync.services import plan

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def ev(ext: str, summary: str = "s", *, updated: datetime | None = T0, cancelled: bool = False,
       master: str | None = None) -> Event:
    return Event(ext_id=ext, summary=summary, status="cancelled" if cancelled else "confirmed",
                 recurring_event_id=master, updated=updated, start=T0, end=T0 + timedelta(hours=1))


def change(ext: str, *, at: datetime = T0, row_hash: str | None = "other", op: str = "update") -> AppChange:
    return AppChange(ext, outbox_id=hash(ext) % 1000, op=op, changed_at=at, row_hash=row_hash,
                     app_version={"eventName": "app"} if row_hash else None)


# --- conflicts -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("policy", "provider_at", "app_at", "won"), [
    ("latest", T0 + timedelta(minutes=1), T0, "provider"),
    ("latest", T0, T0 + timedelta(minutes=1), "app"),
    ("latest", T0, T0, "app"),  # a tie keeps what the user typed
    ("app", T0 + timedelta(days=1), T0, "app"),
    ("provider", T0, T0 + timedelta(days=1), "provider"),
])
def test_one_policy_decides_an_edit_on_both_sides(policy: str, provider_at: datetime, app_at: datetime,
                                                   won: str) -> None:
    out = plan.resolve(policy, [ev("a", updated=provider_at)], [], [], [change("a", at=app_at)])
    assert [c.winner for c in out.conflicts] == [won]
    assert [e.ext_id for e in out.live] == (["a"] if won == "provider" else [])
    (c,) = out.conflicts
    assert (c.app_version is not None) is (won == "provider")  # the loser's version is kept
    assert (c.provider_version is not None) is (won == "app")


def test_our_own_write_coming_back_is_no_conflict_and_the_app_change_goes_out() -> None:
    mine = ev("a", "pushed")
    out = plan.resolve("provider", [mine], [], [], [change("a", row_hash=mine.content_hash())])
    assert out.live == [] and out.conflicts == []


def test_a_tombstone_loses_to_an_app_edit_under_latest() -> None:
    out = plan.resolve("latest", [], ["gone"], [], [change("gone", at=T0 - timedelta(days=30))])
    assert out.deleted == [] and [c.winner for c in out.conflicts] == ["app"]
    assert out.conflicts[0].provider_version == '{"id": "gone", "status": "cancelled"}'


def test_an_app_delete_against_a_provider_edit_records_the_deleted_row() -> None:
    out = plan.resolve("provider", [ev("a")], [], [], [change("a", row_hash=None, op="delete")])
    assert [e.ext_id for e in out.live] == ["a"]
    assert out.conflicts[0].app_version == '{"deleted": true, "op": "delete"}'


def test_changes_for_events_the_page_does_not_name_are_left_alone() -> None:
    out = plan.resolve("latest", [ev("a")], [], [], [change("elsewhere")])
    assert [e.ext_id for e in out.live] == ["a"] and out.conflicts == []


ids = st.lists(st.sampled_from("abcdefgh"), unique=True)


@given(ids, ids, st.lists(st.tuples(st.sampled_from("abcdefghxy"), st.booleans(), st.integers(-5, 5)),
                          unique_by=lambda t: t[0]), st.sampled_from(["latest", "app", "provider"]))
def test_every_provider_change_is_applied_or_beaten_never_both(live_ids: list[str], gone: list[str],
                                                                 changes: list[tuple[str, bool, int]],
                                                                 policy: str) -> None:
    live = [ev(i) for i in live_ids]
    deleted = [g for g in gone if g not in live_ids]
    app = [change(x, at=T0 + timedelta(minutes=m), row_hash=ev(x).content_hash() if echo else "other")
           for x, echo, m in changes]
    out = plan.resolve(policy, live, deleted, [], app)
    kept = {e.ext_id for e in out.live} | set(out.deleted)
    named = set(live_ids) | set(deleted)
    changed = {c.ext_id for c in app}
    assert kept <= named and named - changed <= kept  # untouched provider changes always apply
    for c in out.conflicts:  # a decided conflict: the provider change applies exactly when it won
        assert (c.ext_id in kept) is (c.winner == "provider")
    echoes = {c.ext_id for c in app if c.row_hash == ev(c.ext_id).content_hash() and c.ext_id in live_ids}
    assert not echoes & kept and not echoes & {c.ext_id for c in out.conflicts}


# --- tombstones and run-wide deletions ------------------------------------------------------------


def test_a_page_sorts_live_events_cancelled_occurrences_and_tombstones() -> None:
    s = plan.sort_events([ev("a"), ev("b_20260301", cancelled=True, master="b"), ev("c", cancelled=True)])
    assert ([e.ext_id for e in s.live], [e.ext_id for e in s.cancelled_instances], s.deleted) == (
        ["a"], ["b_20260301"], ["c"])


@pytest.mark.parametrize(("found", "live", "last", "recorded", "earlier", "apply", "record", "unrecord"), [
    (["x", "x", "y"], [], False, None, False, [], ["x", "y"], []),       # recorded, never applied mid-run
    (["x"], ["a"], False, None, True, [], ["x"], ["a"]),                  # a restored event is taken back
    (["z"], [], True, ["x", "y"], True, ["x", "y", "z"], [], []),         # the last page applies all
    ([], ["x"], True, ["x", "y"], True, ["y"], [], []),                   # ...except one listed live again
    ([], [], True, None, False, [], [], []),
])
def test_deletions_wait_for_the_runs_last_page(found: list[str], live: list[str], last: bool,
                                               recorded: list[str] | None, earlier: bool, apply: list[str],
                                               record: list[str], unrecord: list[str]) -> None:
    d = plan.page_deletes(found, live, last_page=last, recorded=recorded, earlier=earlier)
    assert (d.apply, d.record, d.unrecord) == (apply, record, unrecord)


@given(st.lists(st.tuples(ids, ids), min_size=1, max_size=6))
def test_a_run_applies_exactly_the_deletions_its_pages_found_that_no_later_page_restored(
        pages: list[tuple[list[str], list[str]]]) -> None:
    recorded: list[str] = []
    applied: list[str] = []
    for n, (found, live) in enumerate(pages):
        d = plan.page_deletes(found, live, last_page=n == len(pages) - 1, recorded=list(recorded),
                              earlier=bool(recorded))
        assert d.apply == [] or n == len(pages) - 1  # nothing applied before the last page
        recorded = [x for x in recorded if x not in d.unrecord]  # as the store: taken back first,
        recorded += [x for x in d.record if x not in recorded]    # then this page's recorded
        applied = d.apply
    expected = set()
    for n, (found, live) in enumerate(pages):
        expected -= set(live) if n < len(pages) - 1 else set(live) - set(found)
        expected |= set(found)
    assert set(applied) == expected and len(applied) == len(set(applied))


# --- sync-back ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("op", "ext", "held", "action"), [
    ("insert", None, False, "create"), ("update", None, False, "create"), ("update", "g1", True, "update"),
    ("delete", "g1", False, "delete"), ("delete", "g1", True, "hold"), ("delete", None, True, "hold"),
])
def test_push_actions(op: str, ext: str | None, held: bool, action: str) -> None:
    assert plan.push_action(op, ext, held) == action

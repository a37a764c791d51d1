"""The live demo driver against the real worker, PostgreSQL and emulator: it changes both sides, injects
faults, and after quiet rounds everything converges; its convergence check does catch a divergence."""

from __future__ import annotations

from typing import Any

import psycopg

from autosync.demo import Demo


def _sync_all(timeout: float = 40) -> dict[str, Any]:
    """One sync of every due calendar through the broker, awaited."""
    from autosync.services import adhoc

    summary = adhoc.wait(adhoc.enqueue(None, None), timeout)
    assert summary["done"], summary
    return summary


def test_changes_and_faults_on_both_sides_converge_after_quiet_rounds(worker, emulator, database_url) -> None:
    demo = Demo(database_url, emulator, users=3, events_per_calendar=8, seed=7)
    counts = demo.setup()
    assert counts["users_created"] == 3 and counts["calendars"] == 6 and counts["provider_events_created"] >= 48
    _sync_all()
    assert demo.convergence() == (True, [])
    said: list[str] = []
    for cycle in range(1, 8):
        lines = demo.step(cycle)
        assert lines, cycle
        said += lines
        _sync_all()
    # The schedule covered every kind of change and fault.
    for word in ("provider", "app", "429", "410", "revoked", "re-authorized", "both sides"):
        assert any(word in line for line in said), (word, said)
    demo.quiesce()
    assert demo.step(8) == []
    _sync_all()
    _sync_all()
    ok, mismatches = demo.convergence()
    assert (ok, mismatches) == (True, [])
    progress = demo.progress()
    assert progress["calendars"] == 6 and progress["runs_open"] == 0
    assert progress["runs_needs_reauth"] >= 1 and progress["full_syncs"] >= 7 and progress["conflicts"] >= 1
    assert progress["pushes_done"] >= 5 and progress["events_imported"] >= 48
    assert progress["provider_requests"] > 0 and progress["emulator_requests"] >= progress["provider_requests"]


def test_convergence_reports_changes_that_were_not_synced(worker, emulator, database_url, emu,
                                                          db: psycopg.Connection) -> None:
    demo = Demo(database_url, emulator, users=1, events_per_calendar=5, seed=3)
    demo.setup()
    _sync_all()
    assert demo.convergence() == (True, [])
    google_cal = "demo01@demo.miplanit.test"
    item = next(i for i in emu.google_list(google_cal)
                if i.get("status") != "cancelled" and not i.get("recurrence") and not i.get("recurringEventId"))
    emu.google_patch(google_cal, item["id"], {"summary": "Changed behind autosync's back"})
    db.execute('INSERT INTO cal_event ("calendarId", "eventName", "startDate", "endDate", "linkAllDay") '
               'SELECT "calendarId", \'Typed in the app\', current_date + 3, current_date + 3, true '
               'FROM calendar WHERE "calendarType" = 2')
    ok, lines = demo.convergence()
    assert not ok
    assert any(item["id"] in line and "summary differs" in line and "behind" in line for line in lines), lines
    assert any("'Typed in the app' not pushed yet" in line for line in lines), lines
    _sync_all()
    _sync_all()
    assert demo.convergence() == (True, [])


def test_setup_twice_reuses_users_and_relinks_them_to_a_fresh_emulator(worker, emulator, database_url, emu,
                                                                       db: psycopg.Connection) -> None:
    demo = Demo(database_url, emulator, users=2, events_per_calendar=3, seed=5)
    first = demo.setup()
    _sync_all()
    again = demo.setup()
    assert first["users_created"] == 2 and again["users_created"] == 0 and again["users_reused"] == 2
    assert again["accounts_created"] == 0 and again["calendars_relinked"] == 0
    imported = db.execute('SELECT count(*) FROM cal_event WHERE status').fetchone()
    assert imported is not None and imported[0] >= 6
    emu.reset()  # the runner restarted: a fresh emulator, the database kept
    third = demo.setup()
    assert third["users_reused"] == 2 and third["accounts_created"] == 4 and third["calendars_relinked"] == 4
    assert db.execute("SELECT count(*) FROM user_main").fetchone() == (2,)
    assert db.execute("SELECT count(*) FROM calendar").fetchone() == (4,)
    assert db.execute("SELECT count(*) FROM cal_event").fetchone() == (0,)
    assert db.execute('SELECT count(*) FROM event_outbox WHERE "doneAt" IS NULL').fetchone() == (0,)
    _sync_all()
    assert demo.convergence() == (True, [])


def test_provider_env_points_workers_at_the_emulator(emulator, database_url) -> None:
    env = Demo(database_url, emulator, users=1).provider_env()
    assert env["AUTOSYNC_GRAPH_API_URL"] == emulator.graph_api_url
    assert env["AUTOSYNC_GOOGLE_TOKEN_URL"].startswith(emulator.base_url)
    assert (env["MIPLANIT_GOOGLE_CLIENT_ID"], env["MIPLANIT_GOOGLE_CLIENT_SECRET"]) == emulator.clients["google"]
    assert "offline_access" in env["MIPLANIT_OUTLOOK_SCOPE"].split()

"""`autosync db upgrade` adopts the app's existing MiPlanIt database; `autosync db status` reports drift.

The app's database is built from tests/fixtures/miplanit_app_schema.sql (the tables as the app has
them, without anything of autosync's) and filled with rows the way the app writes them.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from autosync.store.migrate import available
from tests.e2e.procs import cli, ops_env, workers

# The session's database sits on this server; its maintenance database creates the others.
PG_ADMIN = os.environ["AUTOSYNC_DATABASE_URL"].rsplit("/", 1)[0] + "/postgres"
APP_SCHEMA = Path(__file__).resolve().parents[1] / "fixtures" / "miplanit_app_schema.sql"
APP_TABLES = {"user_main": "userId", "calendar": "calendarId", "cal_event": "eventId", "cal_event_share": "shareId",
              "non_reg_user_share": "nonRegShareId", "temp_log": "logId"}


def _new_database(prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def _drop_database(url: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


@pytest.fixture()
def app_db() -> Iterator[str]:
    """A database holding the app's tables only (no autosync bookkeeping)."""
    url = _new_database("autosync_app")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(APP_SCHEMA.read_text().encode())
    yield url
    _drop_database(url)


@pytest.fixture()
def empty_db() -> Iterator[str]:
    """An empty database."""
    url = _new_database("autosync_empty")
    yield url
    _drop_database(url)


def _day(offset: int) -> str:
    return (datetime.now(UTC) + timedelta(days=offset)).date().isoformat()


def _fill_like_the_app(url: str, emu: Any) -> dict[str, Any]:
    """Users, an app-only calendar, a Google calendar the seed system synced, shares and a log row."""
    acct = emu.create_account("google", "alice@example.com")
    known = emu.google_insert(acct["calendar_id"], {
        "summary": "Board meeting", "start": {"dateTime": f"{_day(2)}T09:00:00Z"},
        "end": {"dateTime": f"{_day(2)}T10:00:00Z"}})["id"]
    emu.google_insert(acct["calendar_id"], {"summary": "Dentist", "start": {"dateTime": f"{_day(3)}T15:00:00Z"},
                                           "end": {"dateTime": f"{_day(3)}T16:00:00Z"}})
    with psycopg.connect(url, autocommit=True) as conn:
        alice = conn.execute('INSERT INTO user_main (email, "firstName", "lastName", password) VALUES '
                             "('alice@example.com', 'Alice', 'A', 'bcrypt$x') RETURNING \"userId\"").fetchone()[0]
        bob = conn.execute('INSERT INTO user_main (email, "firstName") VALUES (\'bob@example.com\', \'Bob\') '
                           'RETURNING "userId"').fetchone()[0]
        own = conn.execute('INSERT INTO calendar ("userId", "calendarType", "calendarName", "colorCode") '
                           "VALUES (%s, 0, 'Mine', '#ff0000') RETURNING \"calendarId\"", (alice,)).fetchone()[0]
        google = conn.execute(
            'INSERT INTO calendar ("userId", "calendarType", "calendarName", "extCalendarId", "socialAccountId", '
            '"refreshToken", status) VALUES (%s, 1, \'Work\', %s, %s, %s, true) RETURNING "calendarId"',
            (alice, acct["calendar_id"], acct["account_id"], acct["refresh_token"])).fetchone()[0]
        for i in range(30):
            conn.execute('INSERT INTO cal_event ("calendarId", "createdBy", "eventName", "startDate", "endDate", '
                         '"startTime", "endTime", "isReminder") VALUES (%s, %s, %s, %s, %s, \'08:00\', \'09:00\', %s)',
                         (own, alice, f"Own {i}", _day(i), _day(i), i % 2 == 0))
        # Synced earlier by the seed system: the provider's id is already on the row.
        seeded = conn.execute(
            'INSERT INTO cal_event ("calendarId", "createdBy", "extEventId", "eventName", "startDate", "endDate", '
            '"startTime", "endTime") VALUES (%s, %s, %s, \'Board mtg (old title)\', %s, %s, \'09:00\', \'10:00\') '
            'RETURNING "eventId"', (google, alice, known, _day(2), _day(2))).fetchone()[0]
        shared = conn.execute('SELECT min("eventId") FROM cal_event WHERE "calendarId" = %s', (own,)).fetchone()[0]
        conn.execute('INSERT INTO cal_event_share ("eventId", "sharedUser", "sharedStatus") VALUES (%s, %s, 1)',
                     (shared, bob))
        conn.execute('INSERT INTO non_reg_user_share ("activityId", "activityType", email) VALUES (%s, 2, %s)',
                     (shared, "guest@example.org"))
        conn.execute('INSERT INTO temp_log ("userId", data) VALUES (%s, \'{"seed": true}\')', (alice,))
    return {"alice": alice, "google": google, "own": own, "seeded": seeded, "known": known}


def _snapshot(url: str) -> dict[str, list[dict[str, Any]]]:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=dict_row) as cur:
        return {t: [r["row"] for r in cur.execute(f'SELECT to_jsonb(x) AS row FROM {t} x ORDER BY "{pk}"')]  # noqa: S608
                for t, pk in APP_TABLES.items()}


def _unchanged(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> bool:
    """Every row still there with every column it had, holding the same value (new columns allowed)."""
    return len(before) == len(after) and all({k: a.get(k) for k in b} == b for b, a in zip(before, after, strict=True))


def test_upgrade_adopts_the_apps_database_keeping_every_row_and_a_sync_works(app_db, emu) -> None:
    ids = _fill_like_the_app(app_db, emu)
    before = _snapshot(app_db)
    env = ops_env(AUTOSYNC_DATABASE_URL=app_db)

    first = cli("db", "upgrade", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "adopted existing tables cal_event, cal_event_share, calendar, non_reg_user_share, temp_log, user_main" \
        in first.stdout
    # The app's own UNIQUE ("calendarId", "extEventId") serves the upserts: no second index on cal_event.
    assert "cal_event_calendar_ext_key not built: the existing index cal_event_calendarId_extEventId_key" \
        in first.stdout
    after = _snapshot(app_db)
    for table in APP_TABLES:
        assert _unchanged(before[table], after[table]), table

    again = cli("db", "upgrade", env=env)
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout + again.stderr
    checked = cli("db", "status", env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    shipped = len(available())
    assert checked.stdout.strip().splitlines()[-1] == f"{shipped} applied, 0 pending, 0 drift: up to date"

    # The app keeps writing the way it does; a new event on the Google calendar reaches the outbox.
    with psycopg.connect(app_db, autocommit=True) as conn:
        conn.execute('INSERT INTO cal_event ("calendarId", "createdBy", "eventName", "startDate", "endDate", '
                     '"startTime", "endTime") VALUES (%s, %s, \'Lunch\', %s, %s, \'12:00\', \'13:00\')',
                     (ids["google"], ids["alice"], _day(4), _day(4)))
    with workers(1, env):
        out = cli("sync", "--user", str(ids["alice"]), "--wait", "60", env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert [r["outcome"] for r in json.loads(out.stdout)["runs"]] == ["ok"]

    with psycopg.connect(app_db) as conn:
        rows = conn.execute('SELECT "eventId", "extEventId", "eventName" FROM cal_event WHERE "calendarId" = %s '
                            'AND status ORDER BY "eventName"', (ids["google"],)).fetchall()
    names = [r[2] for r in rows]
    assert names == ["Board meeting", "Dentist", "Lunch"]
    # The row the seed system had synced was updated in place, not duplicated.
    assert (ids["seeded"], ids["known"], "Board meeting") in rows
    lunch = next(r for r in rows if r[2] == "Lunch")
    assert lunch[1] is not None  # pushed: the provider's id came back
    provider = {e["summary"] for e in emu.google_list(emu_calendar(app_db, ids["google"]))}
    assert provider == {"Board meeting", "Dentist", "Lunch"}
    final = _snapshot(app_db)
    assert _unchanged(before["user_main"], final["user_main"])  # passwords, names: untouched
    own_before = [r for r in before["cal_event"] if r["calendarId"] == ids["own"]]
    own_after = [r for r in final["cal_event"] if r["calendarId"] == ids["own"]]
    assert _unchanged(own_before, own_after)


def emu_calendar(url: str, calendar_id: int) -> str:
    with psycopg.connect(url) as conn:
        return str(conn.execute('SELECT "extCalendarId" FROM calendar WHERE "calendarId" = %s',
                                (calendar_id,)).fetchone()[0])


def test_upgrade_runs_while_the_app_writes_and_a_long_app_transaction_never_stalls_it(app_db, emu) -> None:
    ids = _fill_like_the_app(app_db, emu)
    stop = threading.Event()
    latencies: list[float] = []
    failures: list[BaseException] = []
    inserted: list[int] = []

    def app_writes() -> None:
        with psycopg.connect(app_db, autocommit=True) as conn:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    row = conn.execute('INSERT INTO cal_event ("calendarId", "createdBy", "eventName", "startDate", '
                                       '"endDate") VALUES (%s, %s, \'app write\', current_date, current_date) '
                                       'RETURNING "eventId"', (ids["own"], ids["alice"])).fetchone()
                    inserted.append(row[0])
                except psycopg.Error as exc:
                    failures.append(exc)
                latencies.append(time.monotonic() - started)
                time.sleep(0.01)

    def long_transaction() -> None:
        # An app transaction that holds calendar for 4 s: an ALTER TABLE calendar that waited for it
        # would queue every app statement touching calendar (FK checks included) behind itself.
        with psycopg.connect(app_db) as conn:
            conn.execute('UPDATE calendar SET "calendarName" = \'Mine!\' WHERE "calendarId" = %s', (ids["own"],))
            time.sleep(4)
            conn.commit()

    before = _snapshot(app_db)
    env = ops_env(AUTOSYNC_DATABASE_URL=app_db)
    threads = [threading.Thread(target=app_writes) for _ in range(2)] + [threading.Thread(target=long_transaction)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    upgrades: list[Any] = []
    runners = [threading.Thread(target=lambda: upgrades.append(cli("db", "upgrade", "--lock-timeout", "0.5",
                                                                   env=env))) for _ in range(2)]
    for t in runners:
        t.start()
    for t in runners:
        t.join()
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join()

    assert [u.returncode for u in upgrades] == [0, 0], [u.stdout + u.stderr for u in upgrades]
    assert failures == [] and len(inserted) > 20
    # Never stuck behind the migration for the 4 s of the long transaction: at most about one lock wait.
    assert max(latencies) < 2.0, sorted(latencies)[-5:]
    text = "".join(u.stdout for u in upgrades)
    assert "is busy (no lock within 0.5s); rolled back" in text  # it met the long transaction and backed off
    assert "another `autosync db upgrade` is running" in text and "nothing to do" in text
    after = _snapshot(app_db)
    for table in ("user_main", "cal_event_share", "non_reg_user_share", "temp_log"):
        assert _unchanged(before[table], after[table]), table
    assert {r["eventId"] for r in after["cal_event"]} == {r["eventId"] for r in before["cal_event"]} | set(inserted)
    assert cli("db", "status", env=env).returncode == 0


def test_an_index_left_invalid_by_an_interrupted_build_is_reported_and_built_again(app_db) -> None:
    env = ops_env(AUTOSYNC_DATABASE_URL=app_db)
    with psycopg.connect(app_db, autocommit=True) as conn:
        # This app never had the unique constraint, and it has a duplicate.
        conn.execute('ALTER TABLE cal_event DROP CONSTRAINT "cal_event_calendarId_extEventId_key"')
        user = conn.execute("INSERT INTO user_main (email) VALUES ('a@example.com') RETURNING \"userId\"").fetchone()[0]
        cal = conn.execute('INSERT INTO calendar ("userId", "calendarType") VALUES (%s, 1) RETURNING "calendarId"',
                           (user,)).fetchone()[0]
        dupes = [conn.execute('INSERT INTO cal_event ("calendarId", "extEventId") VALUES (%s, \'x1\') '
                              'RETURNING "eventId"', (cal,)).fetchone()[0] for _ in range(2)]

    failed = cli("db", "upgrade", env=env)
    assert failed.returncode == 1
    last = failed.stderr.strip().splitlines()
    assert len(last) == 1 and "Traceback" not in failed.stderr
    assert "building index cal_event_calendar_ext_key failed" in last[0] and "remove the duplicate rows" in last[0]
    with psycopg.connect(app_db, autocommit=True) as conn:
        # The failed build did not leave an INVALID index behind.
        assert conn.execute("SELECT to_regclass('cal_event_calendar_ext_key')").fetchone() == (None,)
        conn.execute('DELETE FROM cal_event WHERE "eventId" = %s', (dupes[1],))
    assert cli("db", "upgrade", env=env).returncode == 0

    # Later the index is built again by hand and the build dies half-way: PostgreSQL leaves it INVALID.
    with psycopg.connect(app_db, autocommit=True) as conn:
        conn.execute("DROP INDEX cal_event_calendar_ext_key")
        conn.execute('INSERT INTO cal_event ("calendarId", "extEventId") VALUES (%s, \'x1\')', (cal,))
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute('CREATE UNIQUE INDEX CONCURRENTLY cal_event_calendar_ext_key ON cal_event '
                         '("calendarId", "extEventId")')
        conn.execute('DELETE FROM cal_event WHERE "eventId" > %s', (dupes[0],))
    status = cli("db", "status", env=env)
    assert status.returncode == 1
    assert "index cal_event_calendar_ext_key is INVALID (left by an interrupted concurrent build)" in status.stdout
    repaired = cli("db", "upgrade", env=env)
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "repairing 0001_miplanit_schema.concurrent: cal_event_calendar_ext_key is INVALID" in repaired.stdout
    with psycopg.connect(app_db) as conn:
        valid = conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 'cal_event_calendar_ext_key'::regclass"
                             ).fetchone()
    assert valid == (True,)
    assert cli("db", "status", env=env).returncode == 0


def test_db_status_lists_pending_migrations_and_every_kind_of_drift(empty_db) -> None:
    env = ops_env(AUTOSYNC_DATABASE_URL=empty_db)
    fresh = cli("db", "status", env=env)
    assert fresh.returncode == 1
    assert {line.split()[0] for line in fresh.stdout.splitlines()[:-1]} == {"pending"}
    assert cli("db", "upgrade", env=env).returncode == 0
    assert cli("db", "status", env=env).returncode == 0

    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute("UPDATE autosync_migration SET checksum = 'edited' WHERE name = 'sync_bookkeeping'")
        conn.execute('ALTER TABLE calendar DROP COLUMN "watchError"')
        conn.execute("DROP TRIGGER cal_event_app_change ON cal_event")
        conn.execute("INSERT INTO autosync_migration (version, name, checksum) VALUES (99, 'from_the_future', 'x')")
    drifted = cli("db", "status", env=env)
    assert drifted.returncode == 1
    drift = [line.removeprefix("drift    ") for line in drifted.stdout.splitlines() if line.startswith("drift")]
    assert drift == [
        "0002_sync_bookkeeping: the file changed after it was applied (recorded checksum edited…, file "
        f"{next(m.checksum for m in available() if m.id == '0002_sync_bookkeeping')[:12]}…)",
        "0099_from_the_future: applied, but this version of autosync does not ship it (a newer release, or a "
        "renamed file)",
        'table calendar lacks column "watchError" (added by 0004_push_channels)',
        "trigger cal_event_app_change on cal_event is missing (added by 0002_sync_bookkeeping)",
    ]
    as_json = json.loads(cli("db", "status", "--json", env=env).stdout)
    assert as_json["ok"] is False and len(as_json["drift"]) == 4


def test_a_database_migrated_by_the_earlier_release_upgrades_without_drift(empty_db) -> None:
    from autosync.store.migrate import upgrade

    upgrade(empty_db, report=lambda _: None)
    with psycopg.connect(empty_db, autocommit=True) as conn:
        # The earlier bookkeeping: keyed by version alone, no notes, 0001 recorded with its earlier
        # text (the adoption-safe rewrite produces the same schema), nothing after 0004 (0005-0014 undone).
        conn.execute("DELETE FROM autosync_migration WHERE name LIKE '%.concurrent' OR version > 4")
        conn.execute("ALTER TABLE autosync_migration DROP CONSTRAINT autosync_migration_pkey, DROP COLUMN note, "
                     "ADD PRIMARY KEY (version)")
        conn.execute("UPDATE autosync_migration SET checksum = "
                     "'65da6e132b05686837f207900b5bd502366ab441136cc1909dc98152e6a4a479' WHERE version = 1")
        conn.execute("DROP TABLE fan_out")
        conn.execute("DROP TABLE series_hint")
        conn.execute("DROP TABLE autosync_lease")
        conn.execute("DROP TABLE sync_pending_delete")
        conn.execute('ALTER TABLE sync_run DROP COLUMN "dryRun"')
        conn.execute('ALTER TABLE push_channel ADD COLUMN secret text, DROP COLUMN "secretHash", '
                     'DROP COLUMN "lastMessageNumber"')
        conn.execute("ALTER TABLE sync_request DROP COLUMN error")
        conn.execute('ALTER TABLE sync_run DROP COLUMN "emptyAtStart"')
        conn.execute("DROP TABLE sync_series_listed")
    env = ops_env(AUTOSYNC_DATABASE_URL=empty_db)
    before = cli("db", "status", env=env)
    assert before.returncode == 1 and before.stdout.splitlines()[-1].startswith("4 applied, 10 pending, 0 drift"), \
        before.stdout
    assert [line.split()[1] for line in before.stdout.splitlines() if line.startswith("pending")] == [
        "0001_miplanit_schema.concurrent", "0005_channel_secrets", "0006_leases", "0007_fan_out_claims",
        "0008_series_hints", "0009_metrics_indexes.concurrent", "0010_google_event_types", "0011_run_deletes",
        "0013_full_sync_empty_start", "0014_series_listed"]
    assert cli("db", "upgrade", env=env).returncode == 0
    after = cli("db", "status", env=env)
    assert after.returncode == 0, after.stdout


def test_later_migration_files_apply_in_order_even_when_two_share_a_version(empty_db, tmp_path) -> None:
    from autosync.errors import MigrationError
    from autosync.store.migrate import upgrade
    from autosync.store.schema_check import status

    for m in available():
        (tmp_path / f"{m.id}.sql").write_text(m.sql)
    (tmp_path / "0042_notes.sql").write_text('ALTER TABLE calendar ADD COLUMN "laterNote" text;\n'
                                             "CREATE TABLE later_a (id bigint PRIMARY KEY);\n")
    (tmp_path / "0042_also.sql").write_text("CREATE TABLE later_b (id bigint PRIMARY KEY, x int);\n")
    (tmp_path / "0042_also.concurrent.sql").write_text(
        "-- built without blocking writers\nCREATE INDEX CONCURRENTLY IF NOT EXISTS later_b_x ON later_b (x);\n")
    applied = upgrade(empty_db, report=lambda _: None, source=tmp_path)
    assert applied[-3:] == ["0042_also", "0042_notes", "0042_also.concurrent"]
    assert status(empty_db, source=tmp_path).ok
    shipped_only = status(empty_db)
    assert [d for d in shipped_only.drift if "does not ship" in d] == [
        f"0042_{n}: applied, but this version of autosync does not ship it (a newer release, or a renamed file)"
        for n in ("also", "also.concurrent", "notes")]

    (tmp_path / "0043_bad.concurrent.sql").write_text("ALTER TABLE calendar ADD COLUMN x int;\n")
    with pytest.raises(MigrationError, match=r"0043_bad\.concurrent: a \.concurrent\.sql file holds only"):
        upgrade(empty_db, report=lambda _: None, source=tmp_path)

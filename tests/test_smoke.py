"""Foundation smoke tests: schema upgrade, the Celery app, a real task through the broker."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import psycopg


def test_db_upgrade_is_idempotent_and_says_so(database_url: str) -> None:
    out = subprocess.run([sys.executable, "-m", "autosync.cli", "db", "upgrade", "--database-url",
                          database_url], capture_output=True, text=True, check=True)
    assert "up to date" in out.stdout and "nothing to do" in out.stdout


def test_concurrent_upgrades_on_an_empty_database_both_succeed(database_url: str) -> None:
    admin = database_url.rsplit("/", 1)[0] + "/postgres"
    name = "autosync_concurrent_" + str(int(time.time() * 1000))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = database_url.rsplit("/", 1)[0] + "/" + name
    try:
        from autosync.store.migrate import upgrade

        results: list[list[int]] = []
        errors: list[BaseException] = []

        def go() -> None:
            try:
                results.append(upgrade(url, report=lambda _: None))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=go) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert sorted(len(r) for r in results)[0] == 0  # the second run found nothing to do
        with psycopg.connect(url) as conn:
            n = conn.execute("SELECT count(*) FROM autosync_migration").fetchone()
            assert n is not None and n[0] == max(len(r) for r in results)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_app_writes_with_only_seed_columns_succeed(db: psycopg.Connection) -> None:
    user = db.execute("INSERT INTO user_main (email) VALUES ('a@example.com') RETURNING \"userId\"").fetchone()
    assert user is not None
    cal = db.execute('INSERT INTO calendar ("userId", "calendarType", "extCalendarId", "socialAccountId", token, '
                     '"refreshToken", "accessTokenExpirationDate", "lastSyncDate", "deltaLink", status) '
                     "VALUES (%s, 1, 'x', 'acct', 't', 'r', now(), now(), NULL, true) RETURNING \"calendarId\"",
                     (user[0],)).fetchone()
    assert cal is not None
    db.execute('INSERT INTO cal_event ("calendarId", "createdBy", "eventName", "startDate", "endDate", '
               '"linkAllDay", status) VALUES (%s, %s, %s, current_date, current_date, true, true)',
               (cal[0], user[0], "Offsite"))
    outbox = db.execute("SELECT op FROM event_outbox").fetchall()
    assert outbox == [("insert",)]


def test_a_task_sent_through_the_broker_runs_and_writes_postgres(worker: object, db: psycopg.Connection) -> None:
    from autosync.services import adhoc

    user = db.execute("INSERT INTO user_main (email) VALUES ('b@example.com') RETURNING \"userId\"").fetchone()
    assert user is not None
    request_id = adhoc.enqueue(user[0], None)
    summary = adhoc.wait(request_id, 20)
    assert summary["done"] and not summary["timedOut"]
    row = db.execute('SELECT "finishedAt" IS NOT NULL FROM sync_request WHERE "requestId" = %s',
                     (request_id,)).fetchone()
    assert row == (True,)

"""What the receiver accepts: replays, the other provider's channels, bad secrets, hashed secrets, readiness.

A real worker, PostgreSQL, Redis, the emulator and `autosync webhooks` (in process through the `hooks`
fixture, or as the real process where its startup matters).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import uuid
from typing import Any

import psycopg
import pytest
import requests

from tests.e2e.helpers import link, run_rows, sync
from tests.e2e.receiver import receiver_env, seed_channels, start
from tests.e2e.test_push_notifications import _channels, _secret, _settle, _wait_runs, _watched_google
from tests.e2e.test_push_notifications import hooks as hooks_fixture

hooks = hooks_fixture  # the in-process receiver, with workers notified there


def _google(receiver: Any, channel_id: str, token: str, number: int, state: str = "exists") -> int:
    return requests.post(receiver.url + "/hooks/google", data=b"", timeout=5, headers={
        "X-Goog-Channel-ID": channel_id, "X-Goog-Channel-Token": token, "X-Goog-Resource-State": state,
        "X-Goog-Resource-ID": "r", "X-Goog-Message-Number": str(number)}).status_code


def _graph(receiver: Any, items: list[dict[str, Any]]) -> int:
    return requests.post(receiver.url + "/hooks/graph", data=json.dumps({"value": items}), timeout=5).status_code


def _watched_mailbox(db: psycopg.Connection, emu: Any) -> Any:
    cal = link(db, emu, "outlook", email="bob@example.com")
    assert [r["outcome"] for r in sync(cal.user_id)["runs"]] == ["ok"]
    _settle(emu, db)
    return cal


def _quiet(db: psycopg.Connection, emu: Any, calendar_id: int, runs: int) -> None:
    """Nothing more happens to the calendar: still ``runs`` runs after a while."""
    time.sleep(0.7)
    _settle(emu, db)
    assert len(run_rows(db, calendar_id)) == runs


def test_a_replayed_google_notification_queues_no_second_sync(hooks, db, emu) -> None:
    cal = _watched_google(db, emu)
    [channel] = _channels(db)
    token = _secret(emu, channel["channelId"])
    assert _google(hooks, channel["channelId"], token, 50) == 200
    _wait_runs(db, cal.calendar_id, 2)
    for _ in range(2):  # Google delivering message 50 again (a retry after a lost answer, or a replay)
        assert _google(hooks, channel["channelId"], token, 50) == 200
        _quiet(db, emu, cal.calendar_id, 2)
    assert _google(hooks, channel["channelId"], token, 49) == 200  # older than what was taken
    _quiet(db, emu, cal.calendar_id, 2)
    assert _google(hooks, channel["channelId"], token, 57) == 200  # numbers grow, not always by one
    _wait_runs(db, cal.calendar_id, 3)
    row = db.execute('SELECT "lastMessageNumber" FROM push_channel').fetchone()
    assert row == (57,)


def test_google_and_graph_routes_do_not_take_each_others_channels(hooks, db, emu) -> None:
    google = _watched_google(db, emu)
    outlook = _watched_mailbox(db, emu)
    by_type = {c["calendarType"]: c for c in _channels(db)}
    channel, sub = by_type[1]["channelId"], by_type[2]["channelId"]
    counts = db.execute('SELECT "channelId", messages FROM push_channel').fetchall()
    # Each provider's id and secret, sent to the other provider's route.
    assert _google(hooks, sub, _secret(emu, sub), 9) == 200  # unknown there: answered, ignored
    assert _graph(hooks, [{"subscriptionId": channel, "clientState": _secret(emu, channel),
                           "changeType": "updated"}]) == 202
    _quiet(db, emu, google.calendar_id, 1)
    _quiet(db, emu, outlook.calendar_id, 1)
    assert db.execute('SELECT "channelId", messages FROM push_channel').fetchall() == counts
    # On their own routes they are taken.
    assert _graph(hooks, [{"subscriptionId": sub, "clientState": _secret(emu, sub), "changeType": "updated"}]) == 202
    _wait_runs(db, outlook.calendar_id, 2)


@pytest.mark.parametrize("client_state", [123, {"a": 1}, ["x"], None, True, "x" * 5000])
def test_a_graph_notification_with_a_bad_client_state_is_refused_without_harm(hooks, db, emu, client_state) -> None:
    cal = _watched_mailbox(db, emu)
    [sub] = _channels(db)
    assert _graph(hooks, [{"subscriptionId": sub["channelId"], "clientState": client_state,
                           "changeType": "updated"}]) == 202
    _quiet(db, emu, cal.calendar_id, 1)
    assert _graph(hooks, [{"subscriptionId": sub["channelId"], "clientState": _secret(emu, sub["channelId"]),
                           "changeType": "updated"}]) == 202
    _wait_runs(db, cal.calendar_id, 2)


def test_channel_secrets_are_stored_only_as_hashes(hooks, db, emu) -> None:
    _watched_google(db, emu)
    _watched_mailbox(db, emu)
    columns = {r[0] for r in db.execute("SELECT column_name FROM information_schema.columns "
                                        "WHERE table_name = 'push_channel'").fetchall()}
    assert "secret" not in columns
    rows = db.execute('SELECT "channelId", "secretHash" FROM push_channel').fetchall()
    assert len(rows) == 2
    for channel_id, stored in rows:
        secret = _secret(emu, channel_id)
        assert bytes(stored) == hashlib.sha256(secret.encode()).digest()
        dump = db.execute("SELECT p::text FROM push_channel p WHERE \"channelId\" = %s", (channel_id,)).fetchone()
        assert dump is not None and secret not in dump[0]


def test_the_secret_migration_hashes_existing_channels_and_can_run_twice(database_url) -> None:
    from autosync.store.migrate import available

    admin_url = database_url.rsplit("/", 1)[0] + "/postgres"
    name = f"autosync_mig_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = database_url.rsplit("/", 1)[0] + "/" + name
        migrations = {m.version: m for m in available() if not m.concurrent}  # plain DDL, one transaction each
        with psycopg.connect(url, autocommit=True) as db:
            for version in sorted(v for v in migrations if v < 5):
                db.execute(migrations[version].sql.encode())
            user = db.execute("INSERT INTO user_main (email) VALUES ('m@example.com') RETURNING \"userId\"").fetchone()
            db.execute('INSERT INTO push_channel ("channelId", "calendarType", "userId", secret, "expiresAt") '
                       "VALUES ('old-channel', 1, %s, 'plain-secret', now())", (user[0],))
            for _ in range(2):
                db.execute(migrations[5].sql.encode())
            row = db.execute('SELECT "secretHash" FROM push_channel').fetchone()
            assert row is not None and bytes(row[0]) == hashlib.sha256(b"plain-secret").digest()
            columns = {r[0] for r in db.execute("SELECT column_name FROM information_schema.columns "
                                                "WHERE table_name = 'push_channel'").fetchall()}
            assert "secret" not in columns and "lastMessageNumber" in columns
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _dead_url(scheme: str) -> str:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0" if scheme == "redis" else f"postgresql://postgres@127.0.0.1:{port}/x"


def test_readyz_checks_postgresql_and_the_broker_while_healthz_does_no_io(database_url) -> None:
    seeded = seed_channels(database_url)
    broker = os.environ["AUTOSYNC_TEST_OPS_BROKER"]
    with start(receiver_env(database_url, broker)) as (_, url):
        assert requests.get(url + "/readyz", timeout=5).status_code == 200
        assert requests.get(url + "/healthz", timeout=5).text == "ok\n"
    with start(receiver_env(database_url, _dead_url("redis")), ready=False) as (_, url):
        ready = requests.get(url + "/readyz", timeout=5)
        assert ready.status_code == 503 and "AUTOSYNC_BROKER_URL" in ready.text
        assert "PostgreSQL" not in ready.text
        taken = requests.post(url + "/hooks/google", data=b"", timeout=5, headers={
            "X-Goog-Channel-ID": seeded.google_id, "X-Goog-Channel-Token": seeded.google_secret,
            "X-Goog-Resource-State": "exists", "X-Goog-Message-Number": "5"})
        assert taken.status_code == 503  # cannot be queued: Google delivers it again
    with start(receiver_env(_dead_url("postgresql"), broker), ready=False) as (_, url):
        started = time.monotonic()
        ready = requests.get(url + "/readyz", timeout=5)
        assert ready.status_code == 503 and "AUTOSYNC_DATABASE_URL" in ready.text
        assert "AUTOSYNC_BROKER_URL" not in ready.text
        assert requests.get(url + "/healthz", timeout=5).status_code == 200
        taken = requests.post(url + "/hooks/google", data=b"", timeout=5, headers={
            "X-Goog-Channel-ID": seeded.google_id, "X-Goog-Channel-Token": seeded.google_secret,
            "X-Goog-Resource-State": "exists", "X-Goog-Message-Number": "6"})
        assert taken.status_code == 503  # the channel list cannot be trusted: delivered again later
        assert time.monotonic() - started < 3  # both within Graph's budget

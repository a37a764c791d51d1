"""The worker under provider latency: steps overlap, and no step holds a database connection while a
provider answers (token refresh, channel creation), so the PostgreSQL pool never caps throughput.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.e2e.helpers import link, run_rows, sync
from tests.e2e.test_push_notifications import hooks  # noqa: F401  (fixture)

TOKEN = "google.token"


def _max_in_flight(spans: list[tuple[float, float]]) -> int:
    return max((sum(1 for a, b in spans if a <= t < b) for t, _ in spans), default=0)


def test_concurrent_syncs_under_provider_latency_overlap(worker, db, emu) -> None:
    from autosync.services import adhoc

    latency, n = 0.5, 8
    cals = [link(db, emu, "google", email=f"user{i}@example.com") for i in range(n)]
    emu.set_latency(latency * 1000, provider="google")
    started = time.monotonic()
    request = adhoc.enqueue(None, 1)
    summary = adhoc.wait(request, 60)
    wall = time.monotonic() - started
    assert summary["done"] and [r["outcome"] for r in summary["runs"]] == ["ok"] * n
    log = emu.requests(provider="google")["requests"]
    lists = [(r["received"], r["time"]) for r in log if r["endpoint"] == "google.events.list"]
    tokens = [(r["received"], r["time"]) for r in log if r["endpoint"] == TOKEN]
    assert len(lists) == n and len(tokens) == n
    assert min(b - a for a, b in lists + tokens) >= latency * 0.95  # every answer took its latency
    # One after another, the 8 fetches take 4 s (and the whole sync, token calls included, 8 s);
    # side by side, about one latency each. Generous bounds for a loaded machine, which still fail
    # when steps wait for each other (a pool of 1, or a lock shared across the provider call).
    window = max(b for _, b in lists) - min(a for a, _ in lists)
    assert window < latency * 3, f"{n} concurrent fetches spanned {window:.2f}s"
    assert _max_in_flight(lists) >= n // 2 and _max_in_flight(tokens) >= n // 2
    assert wall < n * 2 * latency / 2, f"the sync of {n} calendars took {wall:.2f}s"
    assert all(run_rows(db, c.calendar_id)[0]["outcome"] == "ok" for c in cals)


@pytest.fixture()
def idle_in_transaction(database_url: str) -> Iterator[Any]:
    """Samples, every 10 ms, the test database's sessions that sit in an open transaction doing nothing:
    (age of that transaction in seconds, its last statement)."""
    found: list[tuple[float, str]] = []
    stop = threading.Event()

    def sample() -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            while not stop.is_set():
                rows = conn.execute(
                    "SELECT extract(epoch FROM clock_timestamp() - xact_start)::float, left(query, 120) "
                    "FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'").fetchall()
                found.extend(rows)
                stop.wait(0.01)

    thread = threading.Thread(target=sample, daemon=True)

    class Probe:
        def start(self) -> None:
            thread.start()

        def stop(self) -> list[tuple[float, str]]:
            stop.set()
            thread.join()
            return found

    yield Probe()
    stop.set()


def test_no_connection_is_held_in_a_transaction_while_the_token_endpoint_answers(worker, db, emu,
                                                                                 idle_in_transaction) -> None:
    cal = link(db, emu, "google")
    emu.add_fault("slow", provider="google", endpoint=TOKEN, delay=1.5)
    idle_in_transaction.start()
    summary = sync(cal.user_id)
    held = idle_in_transaction.stop()
    assert summary["runs"][0]["outcome"] == "ok"
    token = [r for r in emu.requests(provider="google")["requests"] if r["endpoint"] == TOKEN]
    assert len(token) == 1 and token[0]["time"] - token[0]["received"] >= 1.5
    # A transaction open across the 1.5 s call (the lock of the refresh) is seen idle for over a
    # second; a step's own short transactions may be caught between statements (longer on a loaded
    # machine), never for that long.
    assert max((age for age, _ in held), default=0) < 1.0, sorted(held, reverse=True)[:3]


def test_no_connection_is_held_in_a_transaction_while_a_channel_is_made(worker, db, emu, hooks,  # noqa: F811
                                                                        idle_in_transaction) -> None:
    cal = link(db, emu, "google")
    emu.add_fault("slow", provider="google", endpoint="google.events.watch", delay=1.5)
    idle_in_transaction.start()
    summary = sync(cal.user_id)
    held = idle_in_transaction.stop()
    assert summary["runs"][0]["outcome"] == "ok"
    watch = [r for r in emu.requests(provider="google")["requests"] if r["endpoint"] == "google.events.watch"]
    assert len(watch) == 1 and watch[0]["status"] == 200
    assert max((age for age, _ in held), default=0) < 1.0, sorted(held, reverse=True)[:3]


def test_a_chain_waiting_long_for_another_refresh_gives_its_slot_back_and_uses_that_token(worker, db,
                                                                                        emu) -> None:
    from autosync.services import adhoc

    cal = link(db, emu, "google")
    team = emu.create_calendar(cal.account_id, name="Team")
    db.execute('INSERT INTO calendar ("userId", "calendarType", "extCalendarId", "socialAccountId", '
               '"refreshToken", status) VALUES (%s, 1, %s, %s, %s, true)',
               (cal.user_id, team, cal.account_id, cal.refresh_token))
    # The refresh takes longer than AUTOSYNC_MAX_INLINE_WAIT (2 s): the other chain stops waiting in
    # its worker slot, is rescheduled, and then finds the refreshed token.
    # 2.5 s: over the inline wait, under the tests' 3 s read timeout (a timed-out refresh would be sent again).
    emu.add_fault("slow", provider="google", endpoint=TOKEN, delay=2.5)
    request = adhoc.enqueue(cal.user_id, None)
    summary = adhoc.wait(request, 40)
    assert [r["outcome"] for r in summary["runs"]] == ["ok", "ok"]
    assert emu.requests(provider="google", endpoint=TOKEN)["total"] == 1
    tokens = db.execute('SELECT DISTINCT token FROM calendar WHERE "userId" = %s', (cal.user_id,)).fetchall()
    assert len(tokens) == 1
    assert db.execute("SELECT count(*) FROM autosync_lease").fetchone() == (0,)  # released


def test_a_lease_is_held_by_one_claimant_until_released_or_expired(database_url: str) -> None:
    from autosync.store import leases
    from autosync.store.db import transaction

    key = f"test:{time.time()}"
    with transaction() as conn:
        assert leases.claim(conn, key, "a", 0.5)
    with transaction() as conn:
        assert not leases.claim(conn, key, "b", 30)
        leases.release(conn, key, "b")  # not the holder: nothing happens
        assert not leases.claim(conn, key, "b", 30)
    time.sleep(0.6)  # a holder that died: the lease expires on its own
    with transaction() as conn:
        assert leases.claim(conn, key, "b", 30)
        leases.release(conn, key, "a")  # the old holder cannot release the new holder's lease
        assert not leases.claim(conn, key, "c", 30)
        leases.release(conn, key, "b")
        assert leases.claim(conn, key, "c", 30)
        leases.release(conn, key, "c")

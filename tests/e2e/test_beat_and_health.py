"""Beat and worker in operation: a second beat does not double polling; beat and worker health checks."""

from __future__ import annotations

import os
import signal
import time

from tests.e2e.helpers import link
from tests.e2e.procs import beats, cli, ops_env, workers

INTERVAL = 2


def test_two_beats_running_at_once_poll_each_calendar_once_per_interval(db, emu, limits_redis) -> None:
    cals = [link(db, emu, "google", email=f"user{i}@example.com") for i in range(3)]
    env = ops_env(AUTOSYNC_SYNC_INTERVAL=str(INTERVAL))
    with workers(1, env), beats(2, env, stagger=INTERVAL / 2):  # the second beat fires half an interval later
        time.sleep(6 * INTERVAL)
    time.sleep(1)  # let the last runs finish

    runs = db.execute('SELECT "calendarId", extract(epoch FROM "startedAt") FROM sync_run WHERE reason = \'beat\' '
                      'ORDER BY "startedAt"').fetchall()
    assert runs, "no beat fan-out ran"
    span = float(runs[-1][1]) - float(runs[0][1])
    once_per_interval = span / INTERVAL + 1  # fan-outs that fit in the span at one per interval
    for cal in cals:
        mine = [r for r in runs if r[0] == cal.calendar_id]
        assert 3 <= len(mine) <= once_per_interval + 0.5, (len(mine), span)
    lists = emu.requests(provider="google", endpoint="google.events.list")["requests"]
    assert len(lists) <= len(cals) * (once_per_interval + 0.5)  # one listing per calendar per interval, not two
    # Both beats were alive: the second one's fan-outs were skipped, and counted.
    row = db.execute('SELECT duplicates, "lastDuplicateAt" IS NOT NULL FROM fan_out WHERE scope = \'1,2\'').fetchone()
    assert row is not None and row[0] >= 3 and row[1]

    healthy = cli("health", "beat", env=env)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert healthy.stdout.startswith("ok: last fan-out") and "two beats running" in healthy.stdout
    time.sleep(1.5)
    late = cli("health", "beat", "--max-age", "1", env=env)  # beats are stopped: the last fan-out ages
    assert late.returncode == 1 and late.stdout.startswith("unhealthy: last fan-out")


def test_beat_health_fails_until_a_fan_out_was_recorded(db) -> None:
    out = cli("health", "beat", env=dict(os.environ))
    assert out.returncode == 1 and "no periodic fan-out recorded yet" in out.stdout


def test_worker_liveness_file_tracks_a_running_a_hung_and_a_stopped_worker(db, tmp_path) -> None:
    alive = tmp_path / "worker.alive"
    env = ops_env(AUTOSYNC_WORKER_LIVENESS_FILE=str(alive))
    with workers(1, env, pool="prefork") as procs:
        deadline = time.monotonic() + 10
        while not alive.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        ok = cli("health", "worker", env=env)
        assert ok.returncode == 0 and ok.stdout.startswith("ok: worker alive"), ok.stdout + ok.stderr
        # A hung worker (its main loop frozen) stops touching the file.
        procs[0].send_signal(signal.SIGSTOP)
        try:
            time.sleep(6)
            hung = cli("health", "worker", "--max-age", "3", env=env)
        finally:
            procs[0].send_signal(signal.SIGCONT)
        assert hung.returncode == 1 and "the worker is hung" in hung.stdout
    gone = cli("health", "worker", env=env)  # a stopped worker removed its file
    assert gone.returncode == 1 and "does not exist" in gone.stdout

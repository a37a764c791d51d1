"""Operations: cluster-wide limits across worker processes, Flower, status, logs without secrets."""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import UTC, datetime, timedelta

import requests

from tests.e2e.helpers import link
from tests.e2e.procs import BIN, ROOT, cli, ops_env, start_flower, workers


def _insert_many(emu, cal_id: str, n: int) -> None:
    day = datetime.now(UTC).date()
    for i in range(n):
        d = (day + timedelta(days=1 + i)).isoformat()
        emu.google_insert(cal_id, {"summary": f"E{i}", "start": {"dateTime": f"{d}T09:00:00Z"},
                                   "end": {"dateTime": f"{d}T10:00:00Z"}})


def _max_in_window(stamps: list[float], window: float) -> int:
    stamps = sorted(stamps)
    return max((sum(1 for x in stamps[i:] if x < s + window) for i, s in enumerate(stamps)), default=0)


def test_several_worker_processes_never_exceed_the_account_rate_and_honour_cool_downs(db, emu,
                                                                                      limits_redis) -> None:
    cal = link(db, emu, "google")
    # Five more calendars of the same account: every request counts against one account limit.
    ids = [cal.ext_calendar_id] + [emu.create_calendar(cal.account_id, name=f"C{i}") for i in range(5)]
    for ext in ids[1:]:
        db.execute('INSERT INTO calendar ("userId", "calendarType", "extCalendarId", "socialAccountId", '
                   '"refreshToken", status) VALUES (%s, 1, %s, %s, %s, true)',
                   (cal.user_id, ext, cal.account_id, cal.refresh_token))
    for ext in ids:
        _insert_many(emu, ext, 6)
    emu.add_fault(provider="google", endpoint="google.events.list", count=1, status=429,
                  body={"error": {"code": 429, "message": "Rate Limit Exceeded", "errors": [
                      {"domain": "usageLimits", "reason": "rateLimitExceeded", "message": "Rate Limit Exceeded"}]}},
                  headers={"Retry-After": "2"})
    # The emulator enforces Google's per-user quota; autosync is set to 4 a second. autosync admits at
    # most 4 requests in any second *when it sends them*; the emulator counts them when it processes
    # them. Delivery jitter between the two can pack the admissions of up to two adjacent windows into
    # one second of arrivals (4 admitted at t=0 and delayed 20 ms, 4 more admitted at t=1.0 and not), so
    # the emulator's quota sits at twice autosync's rate: unthrottled, three workers send far more.
    emu.set_quota("google", requests_per_window=8, window_seconds=1, variant="403-userRateLimitExceeded")
    env = ops_env(AUTOSYNC_GOOGLE_ACCOUNT_RATE="4/1", AUTOSYNC_GOOGLE_PAGE_SIZE="2")
    with workers(3, env, concurrency=None, supervised=True):  # production's `autosync worker`, 3 x 32 threads
        out = cli("sync", "--user", str(cal.user_id), "--wait", "90", env=env, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    summary = json.loads(out.stdout)
    assert len(summary["runs"]) == 6 and all(r["outcome"] == "ok" for r in summary["runs"])
    log = emu.requests(provider="google")["requests"]
    api = [r for r in log if r["endpoint"] != "google.token"]
    assert len(api) >= 6 * 3  # several pages per calendar: the limit was really exercised
    # The same jitter, bounded: with under 200 ms of it, arrivals in any 0.8 s fit in one window.
    assert _max_in_window([r["received"] for r in api], 0.8) <= 4
    throttled = [r["time"] for r in api if r["status"] == 429]
    assert len(throttled) == 1  # the injected one; the emulator's own quota never tripped
    assert [r for r in api if r["status"] == 403] == []
    # No request may arrive during the cool-down that the 429 (answered at `throttled`) started.
    during = [round(r["received"] - throttled[0], 3) for r in api
              if throttled[0] + 0.05 < r["received"] < throttled[0] + 1.9]
    assert during == []  # every worker honoured the cool-down
    assert db.execute('SELECT count(*) FROM cal_event WHERE status').fetchone() == (36,)


def test_flower_shows_the_sync_tasks_with_their_final_states(db, emu, limits_redis) -> None:
    cal = link(db, emu, "google")
    _insert_many(emu, cal.ext_calendar_id, 2)
    env = ops_env(FLOWER_UNAUTHENTICATED_API="true")
    with workers(1, env):
        flower, base = start_flower(env)
        try:
            out = cli("sync", "--user", str(cal.user_id), "--wait", "60", env=env)
            assert out.returncode == 0, out.stdout + out.stderr
            # A first sync is a full listing, imported by fetch_page itself; a later change is staged
            # and imported by import_page.
            _insert_many(emu, cal.ext_calendar_id, 1)
            out = cli("sync", "--user", str(cal.user_id), "--wait", "60", env=env)
            assert out.returncode == 0, out.stdout + out.stderr
            wanted = {"autosync.sync_user", "autosync.refresh_token", "autosync.fetch_page", "autosync.import_page"}
            seen: dict[str, set[str]] = {}
            for _ in range(50):
                tasks = requests.get(f"{base}/api/tasks", timeout=5).json()
                seen = {}
                for t in tasks.values():
                    seen.setdefault(t["name"], set()).add(t["state"])
                if wanted <= set(seen) and all(seen[n] == {"SUCCESS"} for n in wanted):
                    break
                time.sleep(0.2)
            assert wanted <= set(seen), seen
            assert all(seen[n] == {"SUCCESS"} for n in wanted), seen
            workers_info = requests.get(f"{base}/api/workers", params={"refresh": "true"}, timeout=10).json()
            assert any(name.startswith("ops0-") for name in workers_info)
        finally:
            flower.terminate()
            flower.wait(10)


def test_status_shows_each_calendar_and_a_summary_line(worker, db, emu) -> None:
    from tests.e2e.helpers import sync

    cal = link(db, emu, "google")
    _insert_many(emu, cal.ext_calendar_id, 3)
    sync(cal.user_id)
    env = dict(os.environ)
    out = cli("status", "--user", str(cal.user_id), env=env)
    assert out.returncode == 0
    lines = out.stdout.strip().splitlines()
    assert lines[0].split()[:3] == ["CAL", "USER", "PROVIDER"]
    assert "google" in lines[1] and " ok " in f" {lines[1]} " and "3" in lines[1].split()
    assert lines[-1].startswith("1 calendars: 1 ok, 0 failing, 0 need re-auth, 0 watched, 3 events")
    data = json.loads(cli("status", "--json", env=env).stdout)
    assert data[0]["events"] == 3 and data[0]["needsReauth"] is False and data[0]["cursorAgeSeconds"] is not None


def test_no_token_or_secret_appears_in_any_log_line(db, emu, limits_redis) -> None:
    cal = link(db, emu, "google")
    _insert_many(emu, cal.ext_calendar_id, 2)
    env = ops_env(AUTOSYNC_LOG_LEVEL="DEBUG")
    logfile = ROOT / f".pytest_cache/worker-{os.getpid()}.log"
    logfile.parent.mkdir(exist_ok=True)
    from tests.e2e.procs import _empty

    _empty(env["AUTOSYNC_BROKER_URL"])
    proc = subprocess.Popen([str(BIN / "celery"), "-A", "autosync", "worker", "-P", "threads", "-c", "2",
                             "--loglevel", "DEBUG", "-n", f"logs-{os.getpid()}@%h", "-f", str(logfile)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        out = cli("sync", "--user", str(cal.user_id), "--wait", "60", env=env)
        assert out.returncode == 0, out.stdout + out.stderr
        emu.revoke(cal.account_id)
        db.execute('UPDATE calendar SET token = NULL')
        cli("sync", "--user", str(cal.user_id), "--wait", "60", env=env)
    finally:
        proc.terminate()
        proc.wait(20)
    text = logfile.read_text()
    token = db.execute('SELECT "refreshToken" FROM calendar').fetchone()[0]
    assert "run finished" in text  # the structured line per run is there
    for secret in (token, cal.refresh_token, "google-secret", "outlook-secret"):
        assert secret not in text
    state = emu.state()
    for acct in state.get("accounts", []):
        for value in (acct.get("refresh_token"), *acct.get("access_tokens", [])):
            if value:
                assert value not in text
    assert '"outcome": "needs_reauth"' in text


def test_mailbox_concurrency_is_capped_across_worker_processes(db, emu, limits_redis) -> None:
    from urllib.parse import quote

    cal = link(db, emu, "outlook")
    ids = [cal.ext_calendar_id] + [emu.create_calendar(cal.account_id, name=f"C{i}") for i in range(5)]
    for ext in ids[1:]:
        db.execute('INSERT INTO calendar ("userId", "calendarType", "extCalendarId", "socialAccountId", '
                   '"refreshToken", status) VALUES (%s, 2, %s, %s, %s, true)',
                   (cal.user_id, ext, cal.account_id, cal.refresh_token))
    day = datetime.now(UTC).date() + timedelta(days=2)
    for ext in ids:
        emu.outlook("POST", f"/calendars/{quote(ext, safe='')}/events", {
            "subject": "Sync", "start": {"dateTime": f"{day}T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": f"{day}T10:00:00", "timeZone": "UTC"}})
    # Every delta call is slow, so six chains of one mailbox overlap; the emulator answers the 3rd
    # concurrent request with 429 ApplicationThrottled, as Graph does past its limit.
    emu.set_quota("outlook", concurrency=2)
    emu.add_fault(provider="outlook", endpoint="graph.delta", kind="slow", delay=0.6, count=100)
    env = ops_env(AUTOSYNC_OUTLOOK_MAILBOX_CONCURRENCY="2", AUTOSYNC_MAX_INLINE_WAIT="5")
    with workers(3, env, concurrency=None, supervised=True):  # production's `autosync worker`, 3 x 32 threads
        out = cli("sync", "--user", str(cal.user_id), "--wait", "90", env=env, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    log = [r for r in emu.requests(provider="outlook")["requests"] if r["endpoint"] != "outlook.token"]
    assert [r for r in log if r["status"] == 429] == []
    spans = sorted((r["received"], r["time"]) for r in log)
    peak = max(sum(1 for a, b in spans if a <= t < b) for t, _ in spans)
    assert peak <= 2

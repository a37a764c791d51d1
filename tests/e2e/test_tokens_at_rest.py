"""OAuth tokens at rest: sealed under AUTOSYNC_TOKEN_KEYS, rotated while workers sync, never leaked.

Real worker processes (`celery -A autosync worker`) and the real CLI, with the keys in their
environment; PostgreSQL, Redis and the emulator as everywhere else.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import psycopg.sql
from cryptography.fernet import Fernet

from autosync.store.sealed import Sealer, key_id
from tests.e2e.helpers import Linked, link
from tests.e2e.procs import BIN, ROOT, _empty, cli, ops_env


def _key() -> str:
    return Fernet.generate_key().decode()


@contextmanager
def _worker(env: dict[str, str], log: Path) -> Iterator[None]:
    """One worker process logging (DEBUG) to ``log``; stopped on exit."""
    proc = subprocess.Popen([str(BIN / "celery"), "-A", "autosync", "worker", "-P", "threads", "-c", "4",
                             "--loglevel", "DEBUG", "-n", f"tokens-{os.getpid()}-{id(log)}@%h", "-f", str(log),
                             "--without-gossip", "--without-mingle"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(30)


def _sync_all(env: dict[str, str], *users: int) -> list[dict[str, Any]]:
    runs = []
    for user in users:
        out = cli("sync", "--user", str(user), "--wait", "90", env=env, timeout=120)
        runs += json.loads(out.stdout)["runs"]
    return runs


def _stored(db: psycopg.Connection) -> list[tuple[int, str | None, str | None]]:
    return db.execute('SELECT "calendarId", token, "refreshToken" FROM calendar ORDER BY 1').fetchall()


def _issued(emulator: Any) -> set[str]:
    """Every refresh and access token the emulator (this session's, in process) has issued."""
    return set(emulator.oauth.refresh) | set(emulator.oauth.access)


def _every_table(db: psycopg.Connection) -> str:
    tables = [r[0] for r in db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()]
    query = psycopg.sql.SQL("SELECT t::text FROM {} t")
    return "\n".join(str(r[0]) for t in tables
                     for r in db.execute(query.format(psycopg.sql.Identifier(t))).fetchall())


def _link_both(db: psycopg.Connection, emu: Any) -> tuple[Linked, Linked]:
    google = link(db, emu, "google", email="g@example.com")
    outlook = link(db, emu, "outlook", email="o@example.com")
    return google, outlook


def test_with_keys_every_token_is_sealed_and_none_appears_in_any_log_table_or_output(db, emu, emulator,
                                                                                    limits_redis, tmp_path) -> None:
    google, outlook = _link_both(db, emu)
    key = _key()
    env = ops_env(AUTOSYNC_TOKEN_KEYS=key, AUTOSYNC_LOG_LEVEL="DEBUG")
    _empty(env["AUTOSYNC_BROKER_URL"])
    log = tmp_path / "worker.log"
    outputs = []
    with _worker(env, log):
        runs = _sync_all(env, google.user_id, outlook.user_id)
        assert [r["outcome"] for r in runs] == ["ok", "ok"]
        # Access tokens expire: refreshed (Microsoft also rotates the refresh token) and sealed again.
        emu.expire_access_tokens(google.account_id)
        emu.expire_access_tokens(outlook.account_id)
        db.execute('UPDATE calendar SET "accessTokenExpirationDate" = now() - interval \'1 hour\'')
        runs = _sync_all(env, google.user_id, outlook.user_id)
        assert [r["outcome"] for r in runs] == ["ok", "ok"]
        for args in (("status", "--json"), ("status",), ("tokens", "status")):
            out = cli(*args, env=env)
            outputs.append(out.stdout + out.stderr)
    current = f"enc1:{key_id(key)}:"
    for _, token, refresh in _stored(db):
        assert token.startswith(current) and refresh.startswith(current)
    assert json.loads(outputs[2])["values"] == {key_id(key): 4}
    issued = _issued(emulator)
    assert len(issued) >= 6  # two refresh tokens linked, a rotated one, at least three access tokens
    text = log.read_text()
    assert "run finished" in text
    haystack = "\n".join([text, _every_table(db), *outputs])
    assert [t[:12] for t in issued if t in haystack] == []


def test_a_token_sealed_with_a_missing_key_fails_only_its_calendar_with_a_clear_reason(db, emu, limits_redis,
                                                                                     tmp_path) -> None:
    broken, fine = link(db, emu, "google", email="a@example.com"), link(db, emu, "google", email="b@example.com")
    lost_key = _key()
    sealed = Sealer([lost_key]).seal(broken.refresh_token)
    db.execute('UPDATE calendar SET "refreshToken" = %s WHERE "calendarId" = %s', (sealed, broken.calendar_id))
    env = ops_env(AUTOSYNC_TOKEN_KEYS=_key())
    _empty(env["AUTOSYNC_BROKER_URL"])
    log = tmp_path / "worker.log"
    with _worker(env, log):
        [bad] = _sync_all(env, broken.user_id)
        [good] = _sync_all(env, fine.user_id)
        status = json.loads(cli("status", "--json", env=env).stdout)
    assert good["outcome"] == "ok"
    assert bad["outcome"] == "failed"
    reason = db.execute('SELECT "lastOutcome", "lastError" FROM calendar WHERE "calendarId" = %s',
                        (broken.calendar_id,)).fetchone()
    assert reason[0] == "failed" and "AUTOSYNC_TOKEN_KEYS" in reason[1] and key_id(lost_key) in reason[1]
    assert broken.refresh_token not in reason[1] and sealed.split(":")[2][:20] not in reason[1]
    [row] = [r for r in status if r["calendarId"] == broken.calendar_id]
    assert "AUTOSYNC_TOKEN_KEYS" in row["lastError"]
    # One run, no retry loop, no crash, and the token left as it was for the operator to recover.
    runs = db.execute('SELECT count(*) FROM sync_run WHERE "calendarId" = %s', (broken.calendar_id,)).fetchone()
    assert runs == (1,)
    assert "step crashed" not in log.read_text() and "Traceback" not in log.read_text()
    assert db.execute('SELECT "refreshToken" FROM calendar WHERE "calendarId" = %s',
                      (broken.calendar_id,)).fetchone() == (sealed,)


def test_invalid_key_material_is_refused_at_start_up_naming_the_variable(db) -> None:
    for bad in ("not-a-key", Fernet.generate_key().decode()[:-4], "a,b"):
        out = cli("tokens", "status", env=ops_env(AUTOSYNC_TOKEN_KEYS=bad))
        assert out.returncode == 2 and "AUTOSYNC_TOKEN_KEYS" in out.stderr and bad not in out.stderr


def test_encrypt_then_rotate_while_workers_sync_loses_no_token(db, emu, limits_redis, tmp_path) -> None:
    linked = [link(db, emu, provider, email=f"{provider}{i}@example.com")
              for i in range(4) for provider in ("google", "outlook")]
    users = [c.user_id for c in linked]
    old, new = _key(), _key()

    def expire() -> None:
        for cal in linked:
            emu.expire_access_tokens(cal.account_id)
        db.execute('UPDATE calendar SET "accessTokenExpirationDate" = now() - interval \'1 hour\'')

    def concurrently(env: dict[str, str], command: str, cli_env: dict[str, str]) -> tuple[list[Any], Any]:
        """A sync of every user (each refreshing its token) while `autosync tokens <command>` runs."""
        result: dict[str, Any] = {}
        thread = threading.Thread(target=lambda: result.update(runs=_sync_all(env, *users)))
        thread.start()
        out = cli("tokens", command, "--batch", "2", env=cli_env)
        thread.join()
        return result["runs"], out

    env_old = ops_env(AUTOSYNC_TOKEN_KEYS=old)
    _empty(env_old["AUTOSYNC_BROKER_URL"])
    with _worker(env_old, tmp_path / "w1.log"):
        expire()
        runs, out = concurrently(env_old, "encrypt", env_old)
        assert out.returncode == 0, out.stderr
        assert {r["outcome"] for r in runs} == {"ok"}
    assert cli("tokens", "status", env=env_old).returncode == 0  # everything sealed with the first key

    # Rotation: workers get the new key first (old one still listed), then `tokens rotate`.
    env_both = ops_env(AUTOSYNC_TOKEN_KEYS=f"{new},{old}")
    with _worker(env_both, tmp_path / "w2.log"):
        expire()
        runs, out = concurrently(env_both, "rotate", env_both)
        assert out.returncode == 0, out.stderr
        assert {r["outcome"] for r in runs} == {"ok"}
    status = cli("tokens", "status", env=env_both)
    assert status.returncode == 0, status.stdout
    assert set(json.loads(status.stdout)["values"]) == {key_id(new)}

    # The old key removed: every calendar still refreshes (no rotated Microsoft token was lost).
    env_new = ops_env(AUTOSYNC_TOKEN_KEYS=new)
    with _worker(env_new, tmp_path / "w3.log"):
        expire()
        assert {r["outcome"] for r in _sync_all(env_new, *users)} == {"ok"}
    assert db.execute('SELECT count(*) FROM calendar WHERE "needsReauth"').fetchone() == (0,)

"""A token that turns up in a failure never reaches a table, `autosync status` or a worker log line.

Two real failure paths, on a real worker process writing its real log file:
- pull: the stored access token has a trailing newline (a hand-edited or badly migrated row), so
  requests refuses the Authorization header with an InvalidHeader whose message quotes the bearer
  token; it used to land in sync_run.error, calendar."lastError", `status --json` and the log's exc;
- push: the provider's error answer echoes the Authorization header back, and the push error is
  recorded in event_outbox and temp_log.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess

import psycopg
from psycopg import sql as q

from tests.e2e.helpers import link
from tests.e2e.procs import BIN, ROOT, _empty, cli, ops_env
from tests.e2e.test_pushback_google import app_insert, at

MARK = "e2e-leak-" + secrets.token_hex(6)
TOKEN = "ya29.a0" + MARK


def _everything_stored(db: psycopg.Connection) -> str:
    """Every row of every table as JSON text, except the two columns where tokens belong."""
    tables = [r[0] for r in db.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
        "AND table_type = 'BASE TABLE'").fetchall()]
    texts = []
    for name in tables:
        row = q.SQL("to_jsonb(t) - 'token' - 'refreshToken'") if name == "calendar" else q.SQL("to_jsonb(t)")
        stmt = q.SQL("SELECT coalesce(string_agg(({})::text, E'\\n'), '') FROM {} t").format(row, q.Identifier(name))
        texts.append(db.execute(stmt).fetchone()[0])
    return "\n".join(texts)


def test_a_token_in_a_failure_reaches_no_table_status_or_log_line(db, emu, limits_redis, tmp_path) -> None:
    cal = link(db, emu, "google")
    env = ops_env(AUTOSYNC_LOG_LEVEL="DEBUG")
    logfile = tmp_path / "worker.log"
    _empty(env["AUTOSYNC_BROKER_URL"])
    worker = subprocess.Popen([str(BIN / "celery"), "-A", "autosync", "worker", "-P", "threads", "-c", "2",
                               "--loglevel", "DEBUG", "-n", f"secrets-{os.getpid()}@%h", "-f", str(logfile)],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        first = cli("sync", "--user", str(cal.user_id), "--wait", "60", env=env)
        assert first.returncode == 0, first.stdout + first.stderr

        # Push: the provider's 400 quotes the request's Authorization header.
        app_insert(db, cal, "Lunch", at(2, 12), at(2, 13))
        emu.add_fault("status", provider="google", endpoint="google.events.insert", status=400, count=5, body={
            "error": {"code": 400, "message": f"Authorization: Bearer {TOKEN}",
                      "errors": [{"domain": "global", "reason": f"Bearer {TOKEN}",
                                  "message": f"Authorization: Bearer {TOKEN}"}]}})
        pushed = json.loads(cli("sync", "--user", str(cal.user_id), "--wait", "60", env=env).stdout)
        assert pushed["runs"][0]["pushFailed"] == 1, pushed
        outbox = db.execute('SELECT "lastError" FROM event_outbox').fetchone()[0]
        assert "400" in outbox and "Bearer ***" in outbox

        # Pull: the stored access token cannot be a header value.
        db.execute('UPDATE calendar SET token = %s, "accessTokenExpirationDate" = '
                   "(now() AT TIME ZONE 'utc') + interval '1 hour'", (TOKEN + "\n",))
        failed = json.loads(cli("sync", "--user", str(cal.user_id), "--wait", "60", env=env).stdout)
        run = failed["runs"][0]
        assert run["outcome"] == "failed" and "InvalidHeader" in run["error"], run
        status = cli("status", "--json", env=env)
        assert status.returncode == 1, status.stderr  # the calendar is failing: status works as a check
    finally:
        worker.terminate()
        worker.wait(20)
    stored = _everything_stored(db)
    assert "InvalidHeader" in stored  # the failure was recorded: run error and the calendar's last error
    assert MARK not in stored
    assert MARK not in status.stdout + json.dumps(failed) + json.dumps(pushed)
    log = logfile.read_text()
    assert '"msg": "push failed"' in log and "run finished" in log
    assert MARK not in log

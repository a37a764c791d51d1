"""The command line as an operator meets it: help, version, fail-fast errors, exit codes, status checks."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import time
from typing import Any

import pytest

from tests.e2e.helpers import link, sync
from tests.e2e.procs import BIN, ROOT, cli


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _subparsers(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out.append((name, sub))
                out.extend((f"{name} {n}", s) for n, s in _subparsers(sub))
    return out


def test_every_command_has_a_description_and_every_option_a_help_text() -> None:
    from autosync.cli import build_parser

    commands = _subparsers(build_parser())
    assert {name for name, _ in commands} >= {"db", "db upgrade", "db status", "sync", "handle", "status", "health",
                                              "health beat", "health worker", "emulator", "webhooks", "run"}
    for name, parser in commands:
        assert parser.description, f"`autosync {name}` has no description"
        for action in parser._actions:
            if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                assert action.help, f"`autosync {name}` option {action.option_strings or action.dest} has no help"


def test_version_and_help_name_the_exit_codes() -> None:
    version = cli("--version", env=dict(os.environ))
    assert version.returncode == 0 and version.stdout.startswith("autosync ")
    text = cli("--help", env=dict(os.environ)).stdout
    for code in ("0 ", "1 ", "2 ", "3 ", "4 "):
        assert f"\n  {code}" in text


@pytest.mark.parametrize("raw,expected", [("google", 1), ("outlook", 2), ("Google", 1), ("1", 1), ("2", 2)])
def test_calendar_type_takes_provider_names_and_the_seeds_numbers(raw: str, expected: int) -> None:
    from autosync.cli import build_parser

    assert build_parser().parse_args(["sync", "--all", "--calendar-type", raw]).calendar_type == expected


def test_an_unknown_calendar_type_is_a_usage_error() -> None:
    out = cli("sync", "--all", "--calendar-type", "yahoo", env=dict(os.environ))
    assert out.returncode == 2 and "use google or outlook" in out.stderr


DB_COMMANDS = [("status",), ("sync", "--user", "1"), ("db", "upgrade"), ("db", "status"), ("health", "beat")]


@pytest.mark.parametrize("args", DB_COMMANDS, ids=[" ".join(a) for a in DB_COMMANDS])
def test_a_command_fails_fast_with_one_line_when_postgresql_is_unreachable(database_url: str,
                                                                           args: tuple[str, ...]) -> None:
    port = _closed_port()
    env = dict(os.environ, AUTOSYNC_DATABASE_URL=f"postgresql://autosync:pw-never-shown@127.0.0.1:{port}/autosync")
    started = time.monotonic()
    out = cli(*args, env=env, timeout=30)
    assert time.monotonic() - started < 5
    assert out.returncode == 3, out.stdout + out.stderr
    assert out.stderr.strip() == (f"autosync: cannot connect to PostgreSQL at 127.0.0.1:{port} "
                                  "(AUTOSYNC_DATABASE_URL): Connection refused")


def test_sync_fails_fast_with_one_line_when_the_broker_is_unreachable(database_url: str) -> None:
    port = _closed_port()
    env = dict(os.environ, AUTOSYNC_BROKER_URL=f"redis://:pw-never-shown@127.0.0.1:{port}/0")
    started = time.monotonic()
    out = cli("sync", "--user", "1", env=env, timeout=30)
    assert time.monotonic() - started < 5
    assert out.returncode == 3
    assert out.stderr.strip() == (f"autosync: cannot connect to the broker at 127.0.0.1:{port} "
                                  "(AUTOSYNC_BROKER_URL): Connection refused")


def test_a_database_without_autosyncs_schema_is_named_with_the_command_that_fixes_it(database_url: str) -> None:
    env = dict(os.environ, AUTOSYNC_DATABASE_URL=database_url.rsplit("/", 1)[0] + "/postgres")
    out = cli("status", env=env)
    assert out.returncode == 4 and len(out.stderr.strip().splitlines()) == 1
    assert "lacks autosync's schema" in out.stderr and "run `autosync db upgrade`" in out.stderr


@pytest.mark.parametrize("program", ["worker", "beat"])
def test_celery_with_a_bad_setting_prints_one_line_naming_the_variable(program: str) -> None:
    env = dict(os.environ, AUTOSYNC_SYNC_INTERVAL="soon")
    out = subprocess.run([str(BIN / "celery"), "-A", "autosync", program], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2
    assert len(lines) == 1 and lines[0].startswith("autosync: configuration error: AUTOSYNC_SYNC_INTERVAL "), out.stderr
    same = cli("status", env=env)  # the autosync CLI says it in the same words
    assert same.returncode == 2 and same.stderr.strip() == lines[0]


def _status(env: dict[str, str], *args: str) -> tuple[int, Any]:
    out = cli("status", "--json", *args, env=env)
    return out.returncode, json.loads(out.stdout)


def test_status_filters_and_exits_non_zero_only_for_failing_or_stale_calendars(worker, db, emu) -> None:
    good = link(db, emu, "google")
    broken = link(db, emu, "google", email="bob@example.com")
    revoked = link(db, emu, "google", email="carol@example.com")
    stale = link(db, emu, "google", email="dave@example.com")
    emu.revoke(revoked.account_id)
    for cal in (good, revoked, stale):
        sync(cal.user_id)
    emu.add_fault("status", provider="google", endpoint="google.events.list", count=1, status=403,
                  body={"error": {"code": 403, "message": "Forbidden",
                                  "errors": [{"domain": "global", "reason": "forbidden", "message": "Forbidden"}]}})
    sync(broken.user_id)
    # dave's calendar has not been synced for an hour: 12 beat intervals of 300 s.
    db.execute('UPDATE calendar SET "lastSyncDate" = (now() AT TIME ZONE \'UTC\') - interval \'1 hour\' '
               'WHERE "calendarId" = %s', (stale.calendar_id,))
    env = dict(os.environ)

    code, rows = _status(env)
    assert code == 1 and len(rows) == 4
    by_id = {r["calendarId"]: r for r in rows}
    assert by_id[broken.calendar_id]["failing"] and by_id[stale.calendar_id]["stale"]
    assert not by_id[revoked.calendar_id]["failing"] and by_id[revoked.calendar_id]["needsReauth"]

    code, rows = _status(env, "--failing")
    assert code == 1 and {r["calendarId"] for r in rows} == {broken.calendar_id, stale.calendar_id}
    code, rows = _status(env, "--needs-reauth")
    assert code == 0 and [r["calendarId"] for r in rows] == [revoked.calendar_id]  # the user's to fix: check passes
    assert _status(env, "--calendar", str(good.calendar_id))[0] == 0
    assert _status(env, "--calendar", str(stale.calendar_id))[0] == 1
    assert _status(env, "--calendar", str(stale.calendar_id), "--stale-after", "20")[0] == 0  # 1 h < 20 x 300 s
    assert _status(env, "--user", str(broken.user_id))[0] == 1

    table = cli("status", env=env)
    assert table.returncode == 1
    assert table.stdout.strip().splitlines()[-1].startswith("4 calendars: 2 ok, 1 failing, 1 need re-auth")
    assert table.stdout.strip().endswith("1 stale")

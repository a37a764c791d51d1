"""Settings: the environment contract, validation that names the variable, secrets that stay secret."""

from __future__ import annotations

import argparse
import io
import logging
import math
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import pytest

from autosync.errors import ConfigError
from autosync.log import install
from autosync.settings import Settings, seconds


def test_defaults_match_the_contract() -> None:
    s = Settings.from_env({})
    assert s.google_token_url == "https://oauth2.googleapis.com/token"
    assert s.google_api_url == "https://www.googleapis.com/calendar/v3"
    assert s.outlook_token_url == "https://login.microsoftonline.com/common/oauth2/v2.0/token"
    assert s.graph_api_url == "https://graph.microsoft.com/v1.0"
    assert (s.sync_interval, s.sync_past_days, s.sync_future_days) == (300, 28, 365)


def test_seed_variable_names_are_read() -> None:
    s = Settings.from_env({"MIPLANIT_GOOGLE_CLIENT_ID": "gid", "MIPLANIT_GOOGLE_CLIENT_SECRET": "gsecret",
                           "MIPLANIT_OUTLOOK_CLIENT_ID": "oid", "MIPLANIT_OUTLOOK_CLIENT_SECRET": "osecret",
                           "MIPLANIT_OUTLOOK_SCOPE": "offline_access Calendars.ReadWrite"})
    assert s.google_client_id == "gid" and s.google_client_secret.reveal() == "gsecret"
    assert s.outlook_client_secret.reveal() == "osecret" and s.outlook_scope.startswith("offline_access")


@pytest.mark.parametrize(("name", "value"), [
    ("AUTOSYNC_DATABASE_URL", "mysql://x"), ("AUTOSYNC_BROKER_URL", "amqp://x"),
    ("AUTOSYNC_GOOGLE_API_URL", "ftp://x"), ("AUTOSYNC_SYNC_INTERVAL", "soon"),
    ("AUTOSYNC_SYNC_PAST_DAYS", "-1"), ("AUTOSYNC_CONFLICT_POLICY", "coin-flip"),
    ("AUTOSYNC_GOOGLE_RATE", "many"), ("AUTOSYNC_MASS_DELETE_RATIO", "2"),
])
def test_an_invalid_value_stops_startup_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_secrets_never_show_in_repr_or_errors() -> None:
    s = Settings.from_env({"MIPLANIT_GOOGLE_CLIENT_SECRET": "topsecret-g",
                           "MIPLANIT_OUTLOOK_CLIENT_SECRET": "topsecret-o",
                           "AUTOSYNC_DATABASE_URL": "postgresql://app:dbpassword@db/miplanit"})
    text = repr(s) + str(s.google_client_secret)
    assert "topsecret" not in text and "dbpassword" not in text
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"AUTOSYNC_SYNC_INTERVAL": "x", "MIPLANIT_GOOGLE_CLIENT_SECRET": "topsecret-g"})
    assert "topsecret" not in str(info.value)


def test_log_scrubber_removes_tokens_and_configured_secrets() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    install(handler, ["client-secret-value"])
    record = logging.makeLogRecord({"msg": "POST refresh_token=1//0gABC&client_secret=client-secret-value "
                                           "Authorization: Bearer ya29.XYZ", "args": None,
                                    "detail": '{"access_token": "eyJhbGci"}'})
    handler.handle(record)
    for secret in ("1//0gABC", "client-secret-value", "ya29.XYZ", "eyJhbGci"):
        assert secret not in out.getvalue()


NON_FINITE = ("nan", "NaN", "inf", "-inf", "Infinity", "1e999")


@pytest.mark.parametrize("raw", NON_FINITE)
def test_no_setting_accepts_a_non_finite_number(raw: str) -> None:
    # nan passes every bound check (it compares false), so AUTOSYNC_MASS_DELETE_RATIO=nan disabled the guard.
    for f in fields(Settings):
        name = f.metadata["env"]
        for value in (raw, f"10/{raw}"):
            try:
                settings = Settings.from_env({name: value})
            except ConfigError as exc:
                assert name in str(exc)
                continue
            got = getattr(settings, f.name)
            numbers = got if isinstance(got, tuple) else (got,)
            assert all(math.isfinite(n) for n in numbers if isinstance(n, float)), (name, value, got)


@pytest.mark.parametrize("argv", [
    ["handle", "--timeout", "nan", '{"field": "AutoSync", "arguments": {"userId": 1}}'],
    ["handle", "--timeout", "inf", '{"field": "AutoSync", "arguments": {"userId": 1}}'],
    ["handle", "--timeout", "-1", '{"field": "AutoSync", "arguments": {"userId": 1}}'],
    ["sync", "--all", "--wait", "nan"],
    ["sync", "--all", "--wait", "inf"],
    ["run", "--interval", "nan"],
])
def test_numeric_options_refuse_non_finite_and_negative_seconds(argv: list[str]) -> None:
    # Before, `handle --timeout nan` waited forever: the process must answer at once, with a usage error.
    out = subprocess.run([sys.executable, "-m", "autosync.cli", *argv], capture_output=True, text=True, timeout=30,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 2, out.stdout + out.stderr
    assert argv[-2] in out.stderr or argv[2] in out.stderr


def _actions(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    """Every option of a parser and of its subcommands."""
    for action in parser._actions:
        yield action
        if isinstance(action.choices, dict):
            for sub in action.choices.values():
                yield from _actions(sub)


def test_no_option_takes_a_bare_float() -> None:
    from autosync.cli import build_parser

    options = list(_actions(build_parser()))
    assert {"wait", "timeout", "interval"} <= {a.dest for a in options if a.type is seconds}
    assert [a.dest for a in options if a.type is float] == []  # float() accepts nan and inf


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    missing = [f.metadata["env"] for f in fields(Settings) if f"`{f.metadata['env']}`" not in readme]
    assert missing == []

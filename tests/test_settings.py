"""Settings: the environment contract, validation that names the variable, secrets that stay secret."""

from __future__ import annotations

import io
import logging

import pytest

from autosync.errors import ConfigError
from autosync.log import install
from autosync.settings import Settings


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


def test_every_setting_is_documented_in_the_readme() -> None:
    from dataclasses import fields
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    missing = [f.metadata["env"] for f in fields(Settings) if f"`{f.metadata['env']}`" not in readme]
    assert missing == []

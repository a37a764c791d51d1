"""AUTOSYNC_WEBHOOK_URL: providers deliver only to HTTPS, so plain http is refused except on loopback."""

from __future__ import annotations

import pytest

from autosync.errors import ConfigError
from autosync.settings import Settings


@pytest.mark.parametrize("url", ["http://hooks.example.com/hooks", "http://10.0.0.5:8470/hooks",
                                 "http://[2001:db8::1]:8470/hooks", "http://127.0.0.1.example.com/hooks"])
def test_a_plain_http_webhook_url_stops_startup_naming_the_variable(url: str) -> None:
    with pytest.raises(ConfigError, match="AUTOSYNC_WEBHOOK_URL") as info:
        Settings.from_env({"AUTOSYNC_WEBHOOK_URL": url})
    assert "https" in str(info.value)


@pytest.mark.parametrize("url", ["https://hooks.example.com/hooks", "http://127.0.0.1:8470/hooks",
                                 "http://[::1]:8470/hooks", "http://localhost:8470/hooks",
                                 "http://LOCALHOST/hooks", ""])
def test_https_and_loopback_webhook_urls_are_accepted(url: str) -> None:
    settings = Settings.from_env({"AUTOSYNC_WEBHOOK_URL": url})
    assert settings.webhook_url == url.rstrip("/") and settings.watch_enabled is bool(url)


def test_a_refused_webhook_url_does_not_echo_its_password() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"AUTOSYNC_WEBHOOK_URL": "http://user:hunter2@hooks.example.com/hooks"})
    assert "hunter2" not in str(info.value)

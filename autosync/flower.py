"""`autosync flower`: Flower on the autosync app, never without authentication, on loopback unless configured.

Flower can start any task (a sync with ``allow_mass_delete`` included) and shows task arguments,
so every way autosync starts it (Procfile, docker-compose, `autosync run --flower`) goes through
here. Credentials reach Flower through its own environment variables, never its command line
(which every local user can read in /proc).
"""

from __future__ import annotations

import os
import sys

from autosync.errors import ConfigError
from autosync.settings import Settings

NO_AUTH = ("Flower needs authentication: set FLOWER_BASIC_AUTH=user:password (or Flower's OAuth: FLOWER_AUTH "
           "with FLOWER_AUTH_PROVIDER, FLOWER_OAUTH2_KEY, FLOWER_OAUTH2_SECRET, FLOWER_OAUTH2_REDIRECT_URI)")


def check_auth(settings: Settings) -> None:
    """Refuse to run Flower open: basic auth with a password for every user, or Flower's OAuth."""
    if settings.flower_oauth:
        return
    entries = [e for e in settings.flower_basic_auth.reveal().split(",") if e]
    if not entries:
        raise ConfigError(NO_AUTH)
    for entry in entries:
        user, sep, password = entry.partition(":")
        if not (user and sep and password):
            raise ConfigError("FLOWER_BASIC_AUTH must be user:password[,user:password], each with a password")


def argv(settings: Settings, *, port: int | None = None, address: str | None = None) -> list[str]:
    """The Flower command line: the autosync app, address and port, and nothing secret."""
    return [sys.executable, "-m", "celery", "-A", "autosync", "flower",
            f"--address={settings.flower_address if address is None else address}",
            f"--port={settings.flower_port if port is None else port}"]


def run(settings: Settings, *, port: int | None = None, address: str | None = None) -> int:
    """Check authentication, then become Flower (exec: same pid, signals reach Flower directly)."""
    check_auth(settings)
    command = argv(settings, port=port, address=address)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)  # noqa: S606 - our own interpreter, a fixed module and checked options
    return 0  # not reached

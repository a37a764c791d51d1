"""What every command shares: exit codes, argument types, settings and the one-line message."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from autosync.settings import seconds

# Exit codes (documented in the README's Operating section and in `autosync --help`).
EXIT_OK = 0
EXIT_PROBLEM = 1  # the command ran and found a problem (a failed run, an ER00x answer, a failing check)
EXIT_USAGE = 2  # a bad option or an invalid AUTOSYNC_* setting
EXIT_UNAVAILABLE = 3  # PostgreSQL or the broker cannot be reached
EXIT_SCHEMA = 4  # the database lacks autosync's schema: run `autosync db upgrade`
EXIT_INTERRUPTED = 130

EPILOG = """exit codes:
  0    success; for checks: healthy
  1    the command ran and found a problem: a run failed, `handle` answered ER001-ER006, `status` found
       a failing or stale calendar, `db status` found pending migrations or drift, a health check failed
  2    usage or configuration error (a bad option, an invalid AUTOSYNC_* value)
  3    PostgreSQL (AUTOSYNC_DATABASE_URL) or the broker (AUTOSYNC_BROKER_URL) cannot be reached
  4    the database lacks autosync's schema: run `autosync db upgrade`
  130  interrupted"""


def load_settings() -> Any:
    """The settings, read when a command first needs them (so `--help` works with a bad environment)."""
    from autosync.settings import get_settings

    return get_settings()


def say(line: str) -> None:
    """One line on stderr, flushed."""
    print(line, file=sys.stderr, flush=True)


# --- argument types ------------------------------------------------------------------------------

CALENDAR_TYPES = {"google": 1, "outlook": 2, "1": 1, "2": 2}


def calendar_type(raw: str) -> int:
    """``google`` or ``outlook`` (the seed's numbers 1 and 2 are accepted too)."""
    try:
        return CALENDAR_TYPES[raw.strip().lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"{raw!r}: use google or outlook (or 1, 2)") from None


def positive_int(raw: str) -> int:
    """An id: a whole number above zero."""
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{raw!r} must be above zero")
    return value


def timeout_seconds(raw: str) -> float:
    """Seconds above zero (a lock timeout of 0 would mean: wait forever)."""
    value = seconds(raw)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{raw!r} must be above zero")
    return value


def latency(text: str) -> Any:
    """argparse type of --latency: MS or MS:JITTER_MS (argparse names the option in its error)."""
    from autosync.emulator.latency import parse_latency

    try:
        return parse_latency(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def version() -> str:
    """The installed package's version."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("autosync")
    except PackageNotFoundError:
        return "unknown (not installed)"

"""The parser of every command, the service preflight, and the entry point that maps failures to exit codes."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from autosync.cli.common import (
    EPILOG,
    EXIT_INTERRUPTED,
    EXIT_PROBLEM,
    EXIT_SCHEMA,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    load_settings,
    say,
    version,
)
from autosync.cli.db import add_db
from autosync.cli.health import add_health
from autosync.cli.serve import add_emulator, add_flower, add_metrics, add_run, add_webhooks, add_worker
from autosync.cli.sync import add_handle, add_status, add_sync
from autosync.cli.tokens import add_tokens
from autosync.errors import AutosyncError, ConfigError, SchemaNotReady, ServiceUnavailable

DESCRIPTION = "The `autosync` command line: schema, syncs, the AutoSync event, status, health checks and services."

COMMANDS: tuple[Callable[[Any], None], ...] = (add_db, add_sync, add_handle, add_status, add_health,
                                               add_emulator, add_worker, add_webhooks, add_tokens, add_flower,
                                               add_run, add_metrics)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser."""
    parser = argparse.ArgumentParser(prog="autosync", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"autosync {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def _preflight(args: argparse.Namespace) -> None:
    """Probe the services the command needs, a few seconds each, before it starts."""
    from autosync.services import health

    needs = getattr(args, "needs", ())
    if "database" in needs:
        health.check_database(getattr(args, "database_url", None) or load_settings().database_url)
    if "broker" in needs:
        health.check_broker(load_settings().broker_url)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script: runs a command and maps failures to one line and an exit code."""
    args = build_parser().parse_args(argv)
    try:
        _preflight(args)
        return int(args.func(args))
    except ConfigError as exc:
        say(f"autosync: configuration error: {exc}")
        return EXIT_USAGE
    except ServiceUnavailable as exc:
        say(f"autosync: {exc}")
        return EXIT_UNAVAILABLE
    except SchemaNotReady as exc:
        say(f"autosync: {exc}")
        return EXIT_SCHEMA
    except AutosyncError as exc:  # e.g. a migration that cannot be applied: its message says what to do
        say(f"autosync: {exc}")
        return EXIT_PROBLEM
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:
        from autosync.services.health import classify

        known = classify(exc)
        if known is None:
            raise
        say(f"autosync: {known}")
        return EXIT_SCHEMA if isinstance(known, SchemaNotReady) else EXIT_UNAVAILABLE

"""The `autosync` command line: schema, syncs, the AutoSync event, status, health checks and services.

One module per command group (db, sync, health, tokens, serve), each with a ``cmd_*`` function and an
``add_*`` parser builder per command; entry.py lists them in COMMANDS, builds the parser and maps
failures to exit codes (common.py). A command declares the services it needs (``needs``); they are
probed first, so an unreachable one is reported in a few seconds as one line naming it and its variable.
"""

from autosync.cli.entry import build_parser, main

__all__ = ["build_parser", "main"]

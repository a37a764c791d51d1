"""The `autosync` command line: db upgrade, sync, handle, emulator, status, run, webhooks, metrics."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from autosync.errors import ConfigError


def _settings() -> Any:
    from autosync.settings import get_settings

    return get_settings()


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """Create or upgrade the MiPlanIt schema."""
    from autosync.store.migrate import upgrade

    upgrade(args.database_url or _settings().database_url)
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    """Enqueue syncs now; with --wait, block and print a JSON summary."""
    from autosync.services import adhoc

    if not args.all and args.user is None and args.calendar is None:
        print("error: give --user ID, --calendar ID or --all", file=sys.stderr)
        return 2
    try:
        request_id = adhoc.enqueue(None if args.all else args.user, args.calendar_type,
                                   calendar_id=args.calendar, allow_mass_delete=args.allow_mass_delete)
    except adhoc.InvalidRequest as exc:
        print(json.dumps(exc.response))
        return 2
    if args.wait is None:
        print(json.dumps({"requestId": request_id, "enqueued": True}))
        return 0

    def progress(summary: dict[str, Any]) -> None:
        done = sum(1 for r in summary["runs"] if r["outcome"])
        print(f"\rrequest {request_id}: {done}/{len(summary['runs'])} runs finished", end="", file=sys.stderr)

    summary = adhoc.wait(request_id, args.wait, progress if sys.stderr.isatty() else None)
    print(json.dumps(summary, default=str, indent=2))
    failed = summary["timedOut"] or any(r["outcome"] not in ("ok", None) for r in summary["runs"])
    return 1 if failed else 0


def cmd_handle(args: argparse.Namespace) -> int:
    """Handle an AutoSync event given as an argument or on stdin."""
    from autosync.services import adhoc

    raw = args.event if args.event is not None else sys.stdin.read()
    timeout = args.timeout if args.timeout is not None else _settings().handle_wait
    answer = adhoc.handle(raw, timeout)
    print(json.dumps(answer))
    return 0 if answer["Status"] == "OK" else 1


def cmd_emulator(args: argparse.Namespace) -> int:
    """Serve the provider emulator."""
    from autosync.emulator.server import serve

    serve(args.host, args.port, args.seed)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Per-calendar sync status."""
    from autosync.services.status import render, status_rows

    rows = status_rows(args.user)
    print(json.dumps(rows, default=str, indent=2) if args.json else render(rows))
    return 0


def cmd_webhooks(args: argparse.Namespace) -> int:
    """Serve the change-notification receiver (Google watch channels, Graph subscriptions)."""
    import logging

    from autosync.log import install
    from autosync.webhooks import Receiver

    settings = _settings()
    handler = logging.StreamHandler()
    install(handler, settings.secrets())
    logging.basicConfig(level=settings.log_level, handlers=[handler], force=True)
    host = args.host or settings.webhook_host
    port = settings.webhook_port if args.port is None else args.port
    receiver = Receiver(host, port)
    if not settings.push_enabled:
        print("note: AUTOSYNC_WEBHOOK_URL is not set, so workers create no channels and nothing will notify "
              "this receiver", file=sys.stderr)
    print(f"autosync webhooks listening on {receiver.url}", file=sys.stderr, flush=True)
    try:
        receiver.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        receiver.server.server_close()
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    """Serve Prometheus metrics at /metrics (database series per scrape, worker counters from Redis)."""
    import logging

    from autosync.log import install
    from autosync.metrics_server import MetricsServer

    settings = _settings()
    handler = logging.StreamHandler()
    install(handler, settings.secrets())
    logging.basicConfig(level=settings.log_level, handlers=[handler], force=True)
    host = args.host or settings.metrics_host
    server = MetricsServer(settings, host, settings.metrics_port if args.port is None else args.port)
    print(f"autosync metrics on {server.url}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server.server_close()
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run the whole system (worker, beat, optional Flower), optionally the live demo."""
    from autosync.runner import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser."""
    parser = argparse.ArgumentParser(prog="autosync", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    db = sub.add_parser("db", help="database schema commands")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="SUBCOMMAND")
    up = db_sub.add_parser("upgrade", help="create or upgrade the schema (idempotent, concurrency-safe)")
    up.add_argument("--database-url", help="override AUTOSYNC_DATABASE_URL")
    up.set_defaults(func=cmd_db_upgrade)

    sync = sub.add_parser("sync", help="enqueue syncs now (ad-hoc)")
    sync.add_argument("--user", type=int, help="the user whose calendars to sync")
    sync.add_argument("--all", action="store_true", help="every active calendar (a fan-out now)")
    sync.add_argument("--calendar", type=int, help="one calendar id")
    sync.add_argument("--calendar-type", type=int, choices=[1, 2], help="1 Google, 2 Outlook (default both)")
    sync.add_argument("--wait", type=float, metavar="SECONDS", help="wait for the runs; print a JSON summary")
    sync.add_argument("--allow-mass-delete", action="store_true",
                      help="let this run delete more than the mass-delete guard allows")
    sync.set_defaults(func=cmd_sync)

    handle = sub.add_parser("handle", help="handle an AutoSync event (JSON argument or stdin)")
    handle.add_argument("event", nargs="?", help="the event JSON (default: read stdin)")
    handle.add_argument("--timeout", type=float, help="seconds to wait (default AUTOSYNC_HANDLE_WAIT)")
    handle.set_defaults(func=cmd_handle)

    emu = sub.add_parser("emulator", help="serve the Google/Graph provider emulator")
    emu.add_argument("--host", default="127.0.0.1")
    emu.add_argument("--port", type=int, default=8765)
    emu.add_argument("--seed", help="JSON seed file")
    emu.set_defaults(func=cmd_emulator)

    st = sub.add_parser("status", help="per-calendar sync status")
    st.add_argument("--user", type=int)
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status)

    hooks = sub.add_parser("webhooks", help="serve the change-notification receiver (AUTOSYNC_WEBHOOK_URL)")
    hooks.add_argument("--host", help="bind address (default AUTOSYNC_WEBHOOK_HOST)")
    hooks.add_argument("--port", type=int, help="port (default AUTOSYNC_WEBHOOK_PORT)")
    hooks.set_defaults(func=cmd_webhooks)

    prom = sub.add_parser("metrics", help="serve Prometheus metrics at /metrics (AUTOSYNC_METRICS_HOST/PORT)")
    prom.add_argument("--host", help="bind address (default AUTOSYNC_METRICS_HOST, loopback)")
    prom.add_argument("--port", type=int, help="port (default AUTOSYNC_METRICS_PORT)")
    prom.set_defaults(func=cmd_metrics)

    run = sub.add_parser("run", help="run worker + beat (+ Flower); --demo adds a live emulator demo")
    run.add_argument("--demo", action="store_true", help="start the emulator with seeded users and drive changes")
    run.add_argument("--cycles", type=int, help="stop after N beat cycles and print the summary")
    run.add_argument("--flower", action="store_true", help="also start Flower")
    run.add_argument("--flower-port", type=int, default=5555, help="Flower's port on 127.0.0.1 (default 5555)")
    run.add_argument("--interval", type=float, default=None, help="seconds between cycles (demo default 5)")
    run.add_argument("--workers", type=int, default=2, help="worker processes")
    run.add_argument("--webhooks", action="store_true",
                     help="also run `autosync webhooks` on loopback and watch calendars (change notifications)")
    run.set_defaults(func=cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""The long-running commands: `run`, `worker`, `flower`, `webhooks`, `metrics` and `emulator`."""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from typing import Any

from autosync.cli.common import EXIT_OK, latency, load_settings, positive_int, say
from autosync.settings import seconds


def cmd_run(args: argparse.Namespace) -> int:
    """Run the whole system (worker, beat, optional Flower), optionally the live demo."""
    from autosync.runner import run

    return run(args)


def add_run(sub: Any) -> None:
    """`autosync run`."""
    run = sub.add_parser("run", help="run worker + beat (+ Flower); --demo adds a live emulator demo",
                         description="Run worker and beat as one supervised group, on embedded PostgreSQL and "
                                     "Valkey unless AUTOSYNC_DATABASE_URL / AUTOSYNC_BROKER_URL are set.")
    run.add_argument("--demo", action="store_true", help="start the emulator with seeded users and drive changes")
    run.add_argument("--cycles", type=positive_int, metavar="N", help="stop after N beat cycles and print the summary")
    run.add_argument("--flower", action="store_true", help="also start Flower")
    run.add_argument("--flower-port", type=int, default=None, help="Flower's port (default FLOWER_PORT, 5555)")
    run.add_argument("--interval", type=seconds, default=None, metavar="SECONDS",
                     help="seconds between cycles (demo default 5, else AUTOSYNC_SYNC_INTERVAL)")
    run.add_argument("--workers", type=positive_int, metavar="N",
                     help="worker processes (default AUTOSYNC_WORKER_PROCESSES: two per core)")
    run.add_argument("--latency", type=latency, metavar="MS[:JITTER_MS]",
                     help="with --demo: the emulator answers after MS ± JITTER_MS milliseconds, as real providers do")
    run.add_argument("--webhooks", action="store_true",
                     help="also run `autosync webhooks` on loopback and watch calendars (change notifications)")
    run.set_defaults(func=cmd_run, needs=())


def add_worker(sub: Any) -> None:
    """`autosync worker` (autosync/workers.py)."""
    from autosync.workers import add_parser

    add_parser(sub)


def cmd_flower(args: argparse.Namespace) -> int:
    """Serve Flower for the autosync app; refuses to start without authentication."""
    from autosync import flower

    return flower.run(load_settings(), port=args.port, address=args.address)


def add_flower(sub: Any) -> None:
    """`autosync flower`."""
    fl = sub.add_parser("flower", help="serve Flower (needs FLOWER_BASIC_AUTH or Flower's OAuth settings)",
                        description="Serve Flower for the autosync app on loopback; refuses to start without "
                                    "a login (FLOWER_BASIC_AUTH or Flower's OAuth settings).")
    fl.add_argument("--address", help="bind address (default FLOWER_ADDRESS, 127.0.0.1)")
    fl.add_argument("--port", type=int, help="port (default FLOWER_PORT, 5555)")
    fl.set_defaults(func=cmd_flower, needs=())


def cmd_webhooks(args: argparse.Namespace) -> int:
    """Serve the change-notification receiver (Google watch channels, Graph subscriptions)."""
    from autosync.log import log_to_stderr
    from autosync.webhooks import Receiver

    settings = load_settings()
    log_to_stderr(settings.log_level, settings.secrets())
    host = args.host or settings.webhook_host
    port = settings.webhook_port if args.port is None else args.port
    receiver = Receiver(host, port)
    if not settings.watch_enabled:
        say("note: AUTOSYNC_WEBHOOK_URL is not set, so workers create no channels and nothing will notify "
             "this receiver")
    say(f"autosync webhooks listening on {receiver.url}")
    signal.signal(signal.SIGTERM, lambda *_: receiver.stop())  # finish the answers in progress, then exit
    with contextlib.suppress(KeyboardInterrupt):
        receiver.serve_forever()
    return EXIT_OK


def add_webhooks(sub: Any) -> None:
    """`autosync webhooks`."""
    hooks = sub.add_parser("webhooks", help="serve the change-notification receiver (AUTOSYNC_WEBHOOK_URL)",
                           description="Receive Google watch-channel and Graph subscription notifications "
                                       "and queue a sync of the calendars they name.")
    hooks.add_argument("--host", help="bind address (default AUTOSYNC_WEBHOOK_HOST)")
    hooks.add_argument("--port", type=int, help="port (default AUTOSYNC_WEBHOOK_PORT)")
    hooks.set_defaults(func=cmd_webhooks, needs=())


def cmd_metrics(args: argparse.Namespace) -> int:
    """Serve Prometheus metrics at /metrics (database series per scrape, worker counters from Redis)."""
    from autosync.log import log_to_stderr
    from autosync.metrics_server import MetricsServer

    settings = load_settings()
    log_to_stderr(settings.log_level, settings.secrets())
    host = args.host or settings.metrics_host
    server = MetricsServer(settings, host, settings.metrics_port if args.port is None else args.port)
    say(f"autosync metrics on {server.url}")
    # SIGTERM ends serve_forever from another thread (shutdown() would deadlock in this one).
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.server.shutdown).start())
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    server.server.server_close()
    return EXIT_OK


def add_metrics(sub: Any) -> None:
    """`autosync metrics`."""
    prom = sub.add_parser("metrics", help="serve Prometheus metrics at /metrics (AUTOSYNC_METRICS_HOST/PORT)",
                          description="Serve Prometheus metrics at /metrics: calendar health, sync lag, outbox "
                                      "and channels from PostgreSQL per scrape, worker counters from Redis.")
    prom.add_argument("--host", help="bind address (default AUTOSYNC_METRICS_HOST, loopback)")
    prom.add_argument("--port", type=int, help="port (default AUTOSYNC_METRICS_PORT)")
    # No preflight: the endpoint reports a source it cannot read (autosync_metrics_source_up 0).
    prom.set_defaults(func=cmd_metrics, needs=())


def cmd_emulator(args: argparse.Namespace) -> int:
    """Serve the provider emulator."""
    from autosync.emulator.server import serve

    serve(args.host, args.port, args.seed, args.latency, args.oauth_latency)
    return EXIT_OK


def add_emulator(sub: Any) -> None:
    """`autosync emulator`."""
    emu = sub.add_parser("emulator", help="serve the Google/Graph provider emulator",
                         description="Serve the Google Calendar v3 and Microsoft Graph emulator (OAuth, "
                                     "sync, writes, faults, admin API) for demos and tests.")
    emu.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    emu.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    emu.add_argument("--seed", metavar="FILE", help="JSON seed file of accounts and events")
    emu.add_argument("--latency", type=latency, metavar="MS[:JITTER_MS]",
                     help="every provider answer takes MS ± JITTER_MS milliseconds (default 0)")
    emu.add_argument("--oauth-latency", type=latency, metavar="MS[:JITTER_MS]",
                     help="the OAuth token endpoints' own latency (default: --latency)")
    emu.set_defaults(func=cmd_emulator, needs=())

"""The `autosync` command line: schema, syncs, the AutoSync event, status, health checks and services.

Each command is one ``cmd_*`` function and one ``add_*`` parser builder, listed in COMMANDS. A
command declares the services it needs (``needs``); they are probed first, so an unreachable one is
reported in a few seconds as one line naming it and its variable.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from autosync.errors import AutosyncError, ConfigError, SchemaNotReady, ServiceUnavailable
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


def _settings() -> Any:
    from autosync.settings import get_settings

    return get_settings()


def _say(line: str) -> None:
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


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("autosync")
    except PackageNotFoundError:
        return "unknown (not installed)"


# --- db ------------------------------------------------------------------------------------------


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """Create the schema, or adopt and upgrade an existing MiPlanIt database."""
    from autosync.store.migrate import upgrade

    upgrade(args.database_url or _settings().database_url, report=lambda line: print(line, flush=True),
            lock_timeout=args.lock_timeout, attempts=args.attempts)
    return EXIT_OK


def cmd_db_status(args: argparse.Namespace) -> int:
    """Applied and pending migrations, and drift; non-zero when something is pending or drifted."""
    from autosync.store.schema_check import status

    report = status(args.database_url or _settings().database_url)
    if args.json:
        print(json.dumps(report.as_dict(), default=str, indent=2))
        return EXIT_OK if report.ok else EXIT_PROBLEM
    for e in report.entries:
        when = e.applied_at.strftime("%Y-%m-%d %H:%M:%S") if e.applied_at else ""
        print(f"{e.state:<8} {e.id:<40} {when:<19} {e.note or ''}".rstrip())
    for line in report.drift:
        print(f"drift    {line}")
    for line in report.notes:
        print(f"note     {line}")
    applied = len(report.entries) - len(report.pending)
    verdict = "up to date" if report.ok else "run `autosync db upgrade`" if not report.drift else "needs attention"
    print(f"{applied} applied, {len(report.pending)} pending, {len(report.drift)} drift: {verdict}")
    return EXIT_OK if report.ok else EXIT_PROBLEM


def add_db(sub: Any) -> None:
    """`autosync db upgrade|status`."""
    db = sub.add_parser("db", help="database schema: upgrade, status",
                        description="Create, adopt and check the schema autosync shares with the MiPlanIt app.")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="SUBCOMMAND")
    up = db_sub.add_parser(
        "upgrade", help="create the schema, or adopt an existing MiPlanIt database, and apply pending migrations",
        description="Apply pending migrations: on an empty database it creates everything; on the app's "
                    "database it keeps existing tables and rows and adds what autosync needs. Safe to run "
                    "twice, concurrently, and while the app writes (short lock waits, retried; indexes on "
                    "app tables built CONCURRENTLY). Also rebuilds indexes left INVALID.")
    up.add_argument("--database-url", metavar="URL", help="database to upgrade (default AUTOSYNC_DATABASE_URL)")
    up.add_argument("--lock-timeout", type=timeout_seconds, default=2.0, metavar="SECONDS",
                    help="longest the app's queries may queue behind a migration's lock; then it rolls back "
                         "and retries (default 2)")
    up.add_argument("--attempts", type=positive_int, default=20, metavar="N",
                    help="tries per migration before giving up on a busy table (default 20)")
    up.set_defaults(func=cmd_db_upgrade, needs=("database",))
    st = db_sub.add_parser(
        "status", help="applied and pending migrations, and drift (exit 1 when pending or drifted)",
        description="List applied and pending migrations and any drift: a migration changed after it was "
                    "applied, a table lacking a column, index or trigger autosync needs, an INVALID index. "
                    "Exits 1 when something is pending or drifted, so it works as a deploy check.")
    st.add_argument("--database-url", metavar="URL", help="database to check (default AUTOSYNC_DATABASE_URL)")
    st.add_argument("--json", action="store_true", help="print JSON instead of a table")
    st.set_defaults(func=cmd_db_status, needs=("database",))


# --- sync ----------------------------------------------------------------------------------------


DRY_RUN_WAIT = 120


def cmd_sync(args: argparse.Namespace) -> int:
    """Enqueue syncs now; with --wait, block and print a JSON summary."""
    from autosync.services import adhoc

    if not args.all and args.user is None and args.calendar is None:
        _say("error: give --user ID, --calendar ID or --all")
        return EXIT_USAGE
    try:
        request_id = adhoc.enqueue(None if args.all else args.user, args.calendar_type,
                                   calendar_id=args.calendar, allow_mass_delete=args.allow_mass_delete,
                                   dry_run=args.dry_run)
    except adhoc.InvalidRequest as exc:
        print(json.dumps(exc.response))
        return EXIT_USAGE
    if args.dry_run and args.wait is None:
        args.wait = DRY_RUN_WAIT  # a preview is only useful once it is done
    if args.wait is None:
        print(json.dumps({"requestId": request_id, "enqueued": True}))
        return EXIT_OK

    def progress(summary: dict[str, Any]) -> None:
        done = sum(1 for r in summary["runs"] if r["outcome"])
        print(f"\rrequest {request_id}: {done}/{len(summary['runs'])} runs finished", end="", file=sys.stderr)

    summary = adhoc.wait(request_id, args.wait, progress if sys.stderr.isatty() else None)
    if args.dry_run:
        summary["dryRun"] = True
    print(json.dumps(summary, default=str, indent=2))
    failed = summary["timedOut"] or any(r["outcome"] not in ("ok", None) for r in summary["runs"])
    return EXIT_PROBLEM if failed else EXIT_OK


def add_sync(sub: Any) -> None:
    """`autosync sync`."""
    sync = sub.add_parser("sync", help="sync a user, a calendar or everyone now",
                          description="Enqueue syncs now through the broker (workers run them). Exits 1 "
                                      "with --wait when a run failed or the wait timed out.")
    who = sync.add_mutually_exclusive_group()
    who.add_argument("--user", type=positive_int, metavar="ID", help="the user whose calendars to sync")
    who.add_argument("--all", action="store_true", help="every active calendar of every user")
    sync.add_argument("--calendar", type=positive_int, metavar="ID", help="only this calendar")
    sync.add_argument("--calendar-type", type=calendar_type, metavar="{google,outlook}",
                      help="only this provider (default both)")
    sync.add_argument("--wait", type=seconds, metavar="SECONDS",
                      help="wait up to SECONDS for the runs, then print a JSON summary")
    sync.add_argument("--allow-mass-delete", action="store_true",
                      help="let this run delete more than the mass-delete guard allows")
    sync.add_argument("--dry-run", action="store_true",
                      help="show what the runs would import, delete and push, writing none of it "
                           f"(waits for them: --wait defaults to {DRY_RUN_WAIT} s); a run the mass-delete guard "
                           "would stop shows outcome 'blocked' with the counts consent would apply")
    sync.set_defaults(func=cmd_sync, needs=("database", "broker"))


# --- handle --------------------------------------------------------------------------------------


def cmd_handle(args: argparse.Namespace) -> int:
    """Handle an AutoSync event given as an argument or on stdin; always answers JSON."""
    from autosync.services import adhoc

    raw = args.event if args.event is not None else sys.stdin.read(adhoc.MAX_EVENT_BYTES + 1)
    timeout = args.timeout if args.timeout is not None else _settings().handle_wait
    answer = adhoc.handle(raw, timeout)
    print(json.dumps(answer))
    if answer["Status"] == "OK":
        return EXIT_OK
    return EXIT_UNAVAILABLE if answer["Statuscode"] == "ER007" else EXIT_PROBLEM


def add_handle(sub: Any) -> None:
    """`autosync handle`."""
    handle = sub.add_parser(
        "handle", help="answer an AutoSync event from the app (JSON argument or stdin)",
        description='Handle the app\'s event {"field": "AutoSync", "arguments": {"userId": N, '
                    '"calendarType": 1|2, "silentNotification": 0|1}}: sync that user, wait, and print the '
                    "answer in the seed's shape. ER001 malformed, ER002 wrong field, ER003 bad or missing "
                    "arguments (userId is required), ER004 unknown user, ER005 a sync failed, ER006 still "
                    "running at the timeout, ER007 PostgreSQL or the broker unreachable (exit 3).")
    handle.add_argument("event", nargs="?", help="the event JSON (default: read stdin)")
    handle.add_argument("--timeout", type=seconds, metavar="SECONDS",
                        help="how long to wait for the sync (default AUTOSYNC_HANDLE_WAIT)")
    handle.set_defaults(func=cmd_handle, needs=())


# --- status --------------------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    """Per-calendar sync status; exit 1 when a shown calendar is failing or stale."""
    from autosync.services.status import problems, render, select, status_rows

    rows = select(status_rows(args.user, args.calendar, stale_after=args.stale_after),
                  failing=args.failing, needs_reauth=args.needs_reauth)
    print(json.dumps(rows, default=str, indent=2) if args.json else render(rows))
    return EXIT_PROBLEM if problems(rows) else EXIT_OK


def add_status(sub: Any) -> None:
    """`autosync status`."""
    st = sub.add_parser(
        "status", help="per-calendar sync status (exit 1 when a calendar is failing or stale)",
        description="One line per linked calendar: provider, last sync, outcome, re-auth, events, cursor "
                    "age, pending pushes, watch. Exits 1 when a shown active calendar is failing (its last "
                    "run failed or was blocked) or stale (not synced for --stale-after of its intervals: "
                    "AUTOSYNC_SYNC_INTERVAL, or AUTOSYNC_WATCH_SAFETY_POLL when watched). Calendars waiting "
                    "for their user to re-link are shown but do not fail the check.")
    st.add_argument("--user", type=positive_int, metavar="ID", help="only this user's calendars")
    st.add_argument("--calendar", type=positive_int, metavar="ID", help="only this calendar")
    st.add_argument("--failing", action="store_true", help="only failing or stale calendars")
    st.add_argument("--needs-reauth", action="store_true", help="only calendars waiting for their user to re-link")
    st.add_argument("--stale-after", type=seconds, default=3.0, metavar="N",
                    help="intervals without a sync after which an active calendar is stale (default 3)")
    st.add_argument("--json", action="store_true", help="print JSON instead of a table")
    st.set_defaults(func=cmd_status, needs=("database",))


# --- health --------------------------------------------------------------------------------------


def cmd_health(args: argparse.Namespace) -> int:
    """One health check; prints one line, exits 0 healthy, 1 not."""
    from autosync.services import health

    if args.health_command == "beat":
        verdict = health.beat_health(args.max_age)
    else:
        verdict = health.worker_health(args.file, args.max_age)
    print(("ok: " if verdict.healthy else "unhealthy: ") + verdict.message)
    return EXIT_OK if verdict.healthy else EXIT_PROBLEM


def add_health(sub: Any) -> None:
    """`autosync health beat|worker`."""
    hc = sub.add_parser("health", help="health checks for beat and worker (for docker-compose, k8s probes)",
                        description="Health checks that exit 0 when healthy and 1 when not, for container probes.")
    hc_sub = hc.add_subparsers(dest="health_command", required=True, metavar="CHECK")
    beat = hc_sub.add_parser(
        "beat", help="a periodic fan-out ran recently (reads PostgreSQL)",
        description="Healthy when the beat's last fan-out (recorded by the worker that ran it, table fan_out) "
                    "is younger than --max-age: beat, broker, worker and PostgreSQL all work.")
    beat.add_argument("--max-age", type=seconds, metavar="SECONDS",
                      help="oldest acceptable fan-out (default two beat intervals + 60 s)")
    beat.set_defaults(func=cmd_health, needs=("database",))
    worker = hc_sub.add_parser(
        "worker", help="this host's worker touched its liveness file recently (a stat, no broker round trip)",
        description="Healthy when AUTOSYNC_WORKER_LIVENESS_FILE was touched within --max-age. A worker "
                    "touches it every 5 s while its loop runs and it is connected to the broker, and removes "
                    "it when it stops consuming. Far lighter than `celery inspect ping`.")
    worker.add_argument("--file", metavar="PATH", help="liveness file (default AUTOSYNC_WORKER_LIVENESS_FILE)")
    worker.add_argument("--max-age", type=seconds, metavar="SECONDS", help="oldest acceptable touch (default 30)")
    worker.set_defaults(func=cmd_health, needs=())


# --- services ------------------------------------------------------------------------------------


def cmd_emulator(args: argparse.Namespace) -> int:
    """Serve the provider emulator."""
    from autosync.emulator.server import serve

    serve(args.host, args.port, args.seed, args.latency, args.oauth_latency)
    return EXIT_OK


def _latency(text: str) -> Any:
    """argparse type of --latency: MS or MS:JITTER_MS (argparse names the option in its error)."""
    from autosync.emulator.latency import parse_latency

    try:
        return parse_latency(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_emulator(sub: Any) -> None:
    """`autosync emulator`."""
    emu = sub.add_parser("emulator", help="serve the Google/Graph provider emulator",
                         description="Serve the Google Calendar v3 and Microsoft Graph emulator (OAuth, "
                                     "sync, writes, faults, admin API) for demos and tests.")
    emu.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    emu.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    emu.add_argument("--seed", metavar="FILE", help="JSON seed file of accounts and events")
    emu.add_argument("--latency", type=_latency, metavar="MS[:JITTER_MS]",
                     help="every provider answer takes MS ± JITTER_MS milliseconds (default 0)")
    emu.add_argument("--oauth-latency", type=_latency, metavar="MS[:JITTER_MS]",
                     help="the OAuth token endpoints' own latency (default: --latency)")
    emu.set_defaults(func=cmd_emulator, needs=())


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
    if not settings.watch_enabled:
        _say("note: AUTOSYNC_WEBHOOK_URL is not set, so workers create no channels and nothing will notify "
             "this receiver")
    _say(f"autosync webhooks listening on {receiver.url}")
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


def cmd_tokens(args: argparse.Namespace) -> int:
    """OAuth tokens at rest (AUTOSYNC_TOKEN_KEYS): new-key, status, encrypt, rotate."""
    if args.tokens_command == "new-key":
        from cryptography.fernet import Fernet

        print(Fernet.generate_key().decode())
        return 0
    from autosync.services import sealing
    from autosync.store.sealed import sealer

    if args.tokens_command == "status":
        counts = sealing.status()
        current = sealer().current
        print(json.dumps({"currentKey": current, "values": counts}))
        left = sum(n for state, n in counts.items() if state not in ("empty", current))
        return 0 if current and not left else 1
    if not sealer().enabled:
        print("error: AUTOSYNC_TOKEN_KEYS is not set: there is no key to seal with "
              "(`autosync tokens new-key` prints one)", file=sys.stderr)
        return EXIT_USAGE

    def progress(done: Any) -> None:
        print(f"\rsealed {done.sealed}, changed meanwhile {done.changed_meanwhile}", end="", file=sys.stderr)

    done = sealing.reseal_all(rotate=args.tokens_command == "rotate", batch=args.batch,
                              progress=progress if sys.stderr.isatty() else None)
    print(json.dumps({"sealed": done.sealed, "unreadable": done.unreadable,
                      "changedMeanwhile": done.changed_meanwhile, "key": sealer().current}))
    return 1 if done.unreadable else 0


def cmd_flower(args: argparse.Namespace) -> int:
    """Serve Flower for the autosync app; refuses to start without authentication."""
    from autosync import flower

    return flower.run(_settings(), port=args.port, address=args.address)


def add_tokens(sub: Any) -> None:
    """`autosync tokens new-key|status|encrypt|rotate`."""
    tokens = sub.add_parser("tokens", help="OAuth tokens at rest: seal them with AUTOSYNC_TOKEN_KEYS, rotate keys",
                            description="Seal the OAuth tokens in the calendar table with AUTOSYNC_TOKEN_KEYS "
                                        "(Fernet; the first key seals, every key opens) and rotate keys.")
    tokens_sub = tokens.add_subparsers(dest="tokens_command", required=True, metavar="SUBCOMMAND")
    what = "print a new random key for AUTOSYNC_TOKEN_KEYS"
    tokens_sub.add_parser("new-key", help=what, description=what.capitalize() + ".")
    what = "count token values: plaintext, or sealed by which key (exit 1 while any is not sealed with the first key)"
    tokens_sub.add_parser("status", help=what, description=what.capitalize() + ".")
    for name, what in (("encrypt", "seal every plaintext token with the first key"),
                       ("rotate", "re-seal every token not sealed with the first key (after adding a new first key)")):
        action = tokens_sub.add_parser(name, help=f"{what}; batched, resumable, safe while workers run",
                                       description=f"{what.capitalize()}: in batches of --batch calendars, one "
                                                   "short transaction each; resumable, and safe while workers run "
                                                   "(a token refreshed meanwhile is never overwritten).")
        action.add_argument("--batch", type=positive_int, default=500, metavar="N",
                            help="calendars per transaction (default 500)")
    tokens.set_defaults(func=cmd_tokens, needs=("database",))


def add_flower(sub: Any) -> None:
    """`autosync flower`."""
    fl = sub.add_parser("flower", help="serve Flower (needs FLOWER_BASIC_AUTH or Flower's OAuth settings)",
                        description="Serve Flower for the autosync app on loopback; refuses to start without "
                                    "a login (FLOWER_BASIC_AUTH or Flower's OAuth settings).")
    fl.add_argument("--address", help="bind address (default FLOWER_ADDRESS, 127.0.0.1)")
    fl.add_argument("--port", type=int, help="port (default FLOWER_PORT, 5555)")
    fl.set_defaults(func=cmd_flower, needs=())


def add_worker(sub: Any) -> None:
    """`autosync worker` (autosync/workers.py)."""
    from autosync.workers import add_parser

    add_parser(sub)


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
    _say(f"autosync metrics on {server.url}")
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
                     help="worker processes (default AUTOSYNC_WORKER_PROCESSES: the cores)")
    run.add_argument("--latency", type=_latency, metavar="MS[:JITTER_MS]",
                     help="with --demo: the emulator answers after MS ± JITTER_MS milliseconds, as real providers do")
    run.add_argument("--webhooks", action="store_true",
                     help="also run `autosync webhooks` on loopback and watch calendars (change notifications)")
    run.set_defaults(func=cmd_run, needs=())


COMMANDS: tuple[Callable[[Any], None], ...] = (add_db, add_sync, add_handle, add_status, add_health,
                                               add_emulator, add_worker, add_webhooks, add_tokens, add_flower,
                                               add_run, add_metrics)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser."""
    parser = argparse.ArgumentParser(prog="autosync", description=__doc__.splitlines()[0], epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"autosync {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def _preflight(args: argparse.Namespace) -> None:
    """Probe the services the command needs, a few seconds each, before it starts."""
    from autosync.services import health

    needs = getattr(args, "needs", ())
    if "database" in needs:
        health.check_database(getattr(args, "database_url", None) or _settings().database_url)
    if "broker" in needs:
        health.check_broker(_settings().broker_url)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script: runs a command and maps failures to one line and an exit code."""
    args = build_parser().parse_args(argv)
    try:
        _preflight(args)
        return int(args.func(args))
    except ConfigError as exc:
        _say(f"autosync: configuration error: {exc}")
        return EXIT_USAGE
    except ServiceUnavailable as exc:
        _say(f"autosync: {exc}")
        return EXIT_UNAVAILABLE
    except SchemaNotReady as exc:
        _say(f"autosync: {exc}")
        return EXIT_SCHEMA
    except AutosyncError as exc:  # e.g. a migration that cannot be applied: its message says what to do
        _say(f"autosync: {exc}")
        return EXIT_PROBLEM
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:
        from autosync.services.health import classify

        known = classify(exc)
        if known is None:
            raise
        _say(f"autosync: {known}")
        return EXIT_SCHEMA if isinstance(known, SchemaNotReady) else EXIT_UNAVAILABLE


if __name__ == "__main__":
    sys.exit(main())

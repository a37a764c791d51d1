"""Syncing and looking at syncs: `autosync sync`, `autosync handle` (the AutoSync event), `autosync status`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from autosync.cli.common import (
    EXIT_OK,
    EXIT_PROBLEM,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    calendar_type,
    load_settings,
    positive_int,
    say,
)
from autosync.settings import seconds

DRY_RUN_WAIT = 120


def cmd_sync(args: argparse.Namespace) -> int:
    """Enqueue syncs now; with --wait, block and print a JSON summary."""
    from autosync.services import adhoc

    if not args.all and args.user is None and args.calendar is None:
        say("error: give --user ID, --calendar ID or --all")
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


def cmd_handle(args: argparse.Namespace) -> int:
    """Handle an AutoSync event given as an argument or on stdin; always answers JSON."""
    from autosync.services import adhoc

    raw = args.event if args.event is not None else sys.stdin.read(adhoc.MAX_EVENT_BYTES + 1)
    timeout = args.timeout if args.timeout is not None else load_settings().handle_wait
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

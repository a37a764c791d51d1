"""`autosync tokens new-key|status|encrypt|rotate`: OAuth tokens at rest."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from autosync.cli.common import EXIT_USAGE, positive_int


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

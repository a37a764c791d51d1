"""`autosync tokens encrypt|rotate`: seal every stored OAuth token with the current key, in small batches.

Safe while workers run: each batch is its own short transaction, and each calendar's tokens are
replaced only if they are still what was read (compare-and-set), so a token a worker refreshed or
the app re-linked meanwhile is never overwritten (it is picked up by the next pass). Resumable: what
is done is no longer selected, so an interrupted run simply continues where it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from autosync.errors import TokenUnreadable
from autosync.store.pg import PgStore
from autosync.store.sealed import Sealer, sealer

log = logging.getLogger(__name__)

# Tokens are sealed in the calendar rows: the PostgreSQL store's own operations.
_store = PgStore()


@dataclass
class Resealed:
    """What one `tokens encrypt` / `tokens rotate` did."""

    sealed: int = 0  # calendars whose tokens were sealed with the current key
    unreadable: int = 0  # sealed with a key that is not configured: left as they are
    changed_meanwhile: int = 0  # written by a worker or the app during the pass: left to the next pass
    passes: int = 0


def reseal_all(*, rotate: bool, batch: int = 500, passes: int = 3,
               progress: Callable[[Resealed], None] | None = None, box: Sealer | None = None) -> Resealed:
    """Seal plaintext tokens (``rotate``: also those sealed with an older key) under the current key."""
    box = box or sealer()
    if not box.enabled:
        raise ValueError("AUTOSYNC_TOKEN_KEYS is not set: there is no key to seal with")
    done = Resealed()
    for _ in range(passes):
        done.passes += 1
        moved_this_pass = done.changed_meanwhile
        skipped: set[int] = set()
        after = 0
        while True:
            with _store.unit() as tx:
                rows = tx.unsealed_after(after, batch, key=box.current if rotate else None)
                for row in rows:
                    try:
                        plain = (box.open(row["token"]), box.open(row["refreshToken"]))
                    except TokenUnreadable:
                        skipped.add(row["calendarId"])
                        continue
                    if tx.reseal(box, row["calendarId"], row["token"], row["refreshToken"], *plain):
                        done.sealed += 1
                    else:
                        done.changed_meanwhile += 1
            if not rows:
                break
            after = rows[-1]["calendarId"]
            if progress:
                progress(done)
        done.unreadable = len(skipped)
        if done.changed_meanwhile == moved_this_pass:
            break  # nothing raced this pass: another would find only the unreadable ones
    log.info("tokens resealed", extra={"sealed": done.sealed, "unreadable": done.unreadable,
                                       "changed_meanwhile": done.changed_meanwhile, "key": box.current})
    return done


def status() -> dict[str, int]:
    """Token values by state: empty, plaintext, or the id of the key that sealed them."""
    with _store.unit(origin_sync=False) as tx:
        return tx.sealing_status()

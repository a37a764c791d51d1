"""Change notifications: keep each calendar watched, and turn verified notifications into runs.

Google watches one calendar per channel and has no renewal call: a new channel replaces the old one
before it expires, and the old one is stopped. Graph subscribes to a whole mailbox and renews in place
with a PATCH. Either way the channel is made before the run's fetch, so a change that happens while
the channel is being set up is still seen by that fetch. A channel that cannot be made leaves the
calendar polled by the beat, as without notifications.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from autosync import errors, metrics
from autosync.providers import CalendarRef, WatchRequest
from autosync.providers.http import counting
from autosync.services import runs
from autosync.services.context import Context
from autosync.services.pull import load_run
from autosync.services.runs import Next
from autosync.services.tokens import calendar_ref, ensure_token, fresh_enough
from autosync.store import push as sql
from autosync.store import runs as run_sql
from autosync.store.db import transaction

log = logging.getLogger(__name__)

# Notification kinds that say something changed (Google resource states, Graph change types and
# the lifecycle events that need a resync); `sync` is only Google's handshake.
CHANGE_EVENTS = {"exists", "not_exists", "created", "updated", "deleted", "missed", "subscriptionRemoved",
                 "reauthorizationRequired"}


def addresses(base: str, kind: int) -> tuple[str, str | None]:
    """The receiver URLs a provider notifies: (notifications, Graph lifecycle events)."""
    if kind == 1:
        return f"{base}/google", None
    return f"{base}/graph", f"{base}/graph/lifecycle"


def watch_step(app: Context, run_id: int) -> Next:
    """Make sure the run's calendar is watched, then fetch. Failing to watch never fails the run."""
    ctx = load_run(run_id)
    if ctx is None:
        return Next("done", run_id)
    error, lasting = None, False
    with counting() as stats:
        cal = ensure_token(app, ctx)
        try:
            ensure_watched(app, ctx, cal)
        except (errors.AuthRevoked, errors.AuthInvalid):
            raise  # the run's own fetch would fail the same way: let the retry policy decide once
        except errors.ProviderError as exc:
            # A refusal (e.g. a calendar that does not support notifications) waits a day before the
            # next try; a hiccup (5xx, throttling) is tried again by the next run.
            error, lasting = exc.describe(), not isinstance(exc, errors.Transient | errors.Throttled)
            log.warning("could not watch calendar, it stays polled",
                        extra={"calendar": ctx["calendarId"], "error": error})
    with transaction() as conn:
        sql.set_watch_error(conn, ctx["calendarId"], error, lasting=lasting)
        run_sql.touch(conn, run_id, "fetch", stats.count)
    return Next("fetch", run_id, calendar_type=ctx["calendarType"])


def ensure_watched(app: Context, ctx: dict[str, Any], cal: CalendarRef) -> None:
    """Create or renew the channel that covers the calendar, unless another chain just did."""
    settings = app.settings
    provider = app.provider(ctx["calendarType"])
    now = datetime.now(UTC)
    expires = now + timedelta(seconds=settings.watch_ttl)
    with transaction() as conn:
        sql.lock_mailbox(conn, ctx)  # a mailbox's calendars share one Graph subscription
        live = sql.live_for_calendar(conn, ctx["calendarId"])
        if any(ch["expiresAt"] > now + timedelta(seconds=settings.watch_renew_before) for ch in live):
            return
        if live:  # renew the newest in place (Graph; even past its expiry, or it answers NotFound)
            try:
                renewed = provider.renew_watch(cal, live[0]["channelId"], expires)
            except errors.NotFound:
                renewed = None  # Graph removed it: make a new one
                sql.stop(conn, [live[0]["channelId"]])
                live = live[1:]
            if renewed is not None:
                sql.renewed(conn, renewed.id, renewed.expires_at)
                _stop_all(provider, cal, conn, [ch for ch in live if ch["channelId"] != renewed.id])
                log.info("channel renewed", extra={"calendar": ctx["calendarId"], "channel": renewed.id,
                                                   "expires": renewed.expires_at.isoformat()})
                return
        address, lifecycle = addresses(settings.webhook_url, ctx["calendarType"])
        secret = secrets.token_urlsafe(32)
        channel = provider.watch(cal, WatchRequest(channel_id=str(uuid.uuid4()), address=address,
                                                   lifecycle_address=lifecycle, secret=secret, expires_at=expires))
        per_calendar = ctx["calendarType"] == 1 or not ctx["socialAccountId"]
        sql.insert(conn, ctx, channel_id=channel.id, calendar_id=ctx["calendarId"] if per_calendar else None,
                   resource_id=channel.resource_id, secret=secret, expires=channel.expires_at)
        _stop_all(provider, cal, conn, live)
        log.info("channel created", extra={"calendar": ctx["calendarId"], "channel": channel.id,
                                           "expires": channel.expires_at.isoformat()})


def _stop_all(provider: Any, cal: CalendarRef, conn: Any, channels: list[dict[str, Any]]) -> None:
    """Stop replaced channels; one that cannot be stopped now expires on its own and is ignored."""
    for ch in channels:
        try:
            provider.unwatch(cal, ch["channelId"], ch["resourceId"])
        except errors.ProviderError as exc:
            log.warning("could not stop a replaced channel", extra={"channel": ch["channelId"],
                                                                    "error": exc.describe()})
    sql.stop(conn, [ch["channelId"] for ch in channels])


@dataclass(frozen=True)
class Verdict:
    """What the receiver makes of one notification."""

    status: str  # accepted | unknown | forbidden
    calendar_type: int | None = None
    sync: bool = False  # whether it asks for a run


def verify(channel_id: str, secret: str | None, event: str) -> Verdict:
    """Check a notification against its channel (constant-time secret comparison) and count it."""
    if not channel_id:
        return Verdict("unknown")
    with transaction() as conn:
        ch = sql.lookup(conn, channel_id)
        if ch is None or ch["stoppedAt"] is not None:
            return Verdict("unknown")
        if not hmac.compare_digest(ch["secret"].encode(), (secret or "").encode()):
            return Verdict("forbidden")
        sql.accepted(conn, channel_id, event)
    return Verdict("accepted", ch["calendarType"], event in CHANGE_EVENTS)


def on_notification(app: Context, channel_id: str, event: str) -> list[Next]:
    """Open runs for the calendars a verified notification covers (coalescing with runs in progress)."""
    with transaction() as conn:
        if event == "reauthorizationRequired":
            sql.due_now(conn, channel_id)  # the run's watch step renews it (a PATCH also reauthorizes)
        elif event == "subscriptionRemoved":
            sql.stop(conn, [channel_id])  # the run's watch step makes a new one
        ids = [r["calendarId"] for r in sql.calendars_of(conn, channel_id)]
    metrics.notification_routed(channel_id, ids)
    if not ids:
        return []
    steps, _ = runs.open_runs(app, [1, 2], reason="push", calendar_ids=ids)
    return steps


def orphans() -> list[str]:
    """Channels to stop because no active calendar needs them (the beat queues one task each)."""
    with transaction() as conn:
        return [r["channelId"] for r in sql.orphaned(conn)]


def unwatch_orphan(app: Context, channel_id: str) -> bool:
    """Stop a channel its calendars no longer need; returns whether the provider was told.

    Only with the stored access token while it is fresh: no refresh (and no re-auth notice) for a
    calendar the user unlinked. Without one, the channel is forgotten and expires on its own.
    """
    with transaction() as conn:
        rows = sql.orphaned(conn, channel_id)
        if not rows:
            return False
        ch = rows[0]
        told = False
        if ch["calendarId"] is not None and fresh_enough(ch["token"], ch["accessTokenExpirationDate"],
                                                         app.settings.token_refresh_margin):
            cal = calendar_ref(ch, ch["token"])
            try:
                app.provider(ch["calendarType"]).unwatch(cal, channel_id, ch["resourceId"])
                told = True
            except errors.ProviderError as exc:
                log.warning("could not stop an unneeded channel; it expires on its own",
                            extra={"channel": channel_id, "error": exc.describe()})
        sql.stop(conn, [channel_id])
    log.info("channel stopped: no active calendar needs it", extra={"channel": channel_id, "told": told})
    return told

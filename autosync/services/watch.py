"""Change notifications: keep each calendar watched, and turn verified notifications into runs.

Google watches one calendar per channel and has no renewal call: a new channel replaces the old one
before it expires, and the old one is stopped. Graph subscribes to a whole mailbox and renews in place
with a PATCH. Either way the channel is made before the run's fetch, so a change that happens while
the channel is being set up is still seen by that fetch. A channel that cannot be made leaves the
calendar polled by the beat, as without notifications.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from autosync import errors, metrics
from autosync.model import Step
from autosync.providers import Adapter, CalendarRef, WatchRequest
from autosync.providers.http import counting
from autosync.redact import describe
from autosync.retries import retryable
from autosync.services import runs
from autosync.services.channels import hash_secret
from autosync.services.context import App, context
from autosync.services.leases import held
from autosync.services.pull import load_run
from autosync.services.runs import Next
from autosync.services.tokens import ensure_token, fresh_enough
from autosync.settings import Settings
from autosync.store import channels as sql
from autosync.store.runs import RunContext

log = logging.getLogger(__name__)



def watch_ttl(settings: Any, provider: Adapter) -> int:
    """The lifetime to ask a provider for: AUTOSYNC_WATCH_TTL, capped at the provider's maximum."""
    cap = provider.max_watch_ttl
    return settings.watch_ttl if cap is None else min(settings.watch_ttl, cap)


def renew_before(settings: Any, provider: Adapter) -> int:
    """How long before expiry a channel is renewed: AUTOSYNC_WATCH_RENEW_BEFORE, at most half the
    capped lifetime (a margin as long as the lifetime would renew the channel on every run)."""
    return min(settings.watch_renew_before, watch_ttl(settings, provider) // 2)


def addresses(base: str, provider: Adapter) -> tuple[str, str | None]:
    """The receiver URLs a provider notifies: (notifications, channel lifecycle events)."""
    return base + provider.watch_path, base + provider.lifecycle_path if provider.lifecycle_path else None


def watch_step(app: App, run_id: int) -> Next:
    """Make sure the run's calendar is watched, then fetch. Failing to watch never fails the run."""
    run = load_run(app, run_id)
    if run is None:
        return Next(Step.DONE, run_id)
    error, lasting = None, False
    with counting() as stats:
        cal = ensure_token(app, run)
        try:
            ensure_watched(app, run, cal)
        except (errors.AuthRevoked, errors.AuthInvalid):
            raise  # the run's own fetch would fail the same way: let the retry policy decide once
        except errors.ProviderError as exc:
            # A refusal (e.g. a calendar that does not support notifications) waits a day before the
            # next try; a hiccup (5xx, throttling) is tried again by the next run.
            error = describe(exc, app.settings.secrets())
            lasting = not retryable(exc)
            log.warning("could not watch calendar, it stays polled",
                        extra={"calendar": run.calendar_id, "error": error})
    with app.store.unit() as tx:
        tx.set_watch_error(run.calendar_id, error, lasting=lasting)
        tx.touch(run_id, Step.FETCH, stats.count)
    return Next(Step.FETCH, run_id, calendar_type=run.calendar_type, calendar_id=run.calendar_id)


def ensure_watched(app: App, run: RunContext, cal: CalendarRef) -> None:
    """Create or renew the channel that covers the calendar, unless another chain just did.

    Channel changes of one mailbox (Graph: one subscription per mailbox) or one calendar (Google) are
    serialized by a lease; the provider calls run with no database connection held.
    """
    settings = app.settings
    with held(app, sql.watch_key(run), ttl=_watch_lease_seconds(settings), wait=settings.max_inline_wait) as mine:
        if not mine:
            # Another chain is changing this channel right now; what it makes covers this calendar,
            # and if it fails the next run tries again. This run fetches either way.
            log.info("channel change in progress elsewhere", extra={"calendar": run.calendar_id})
            return
        _ensure_watched(app, run, cal)


def _watch_lease_seconds(settings: Settings) -> float:
    """A create, a renew and a few stops, each with every retry timing out: a lease that outlasts them."""
    per_call = (settings.http_retries + 1) * (settings.http_connect_timeout + settings.http_read_timeout)
    return 4 * per_call + 30.0


def _ensure_watched(app: App, run: RunContext, cal: CalendarRef) -> None:
    settings = app.settings
    provider = app.provider(run.calendar_type)
    now = datetime.now(UTC)
    expires = now + timedelta(seconds=watch_ttl(settings, provider))
    margin = timedelta(seconds=renew_before(settings, provider))
    with app.store.unit() as tx:  # read after the lease is held: sees what the previous holder saved
        live = tx.live_channels(run.calendar_id)
    if any(ch["expiresAt"] > now + margin for ch in live):
        return
    if live:  # renew the newest in place (Graph; even past its expiry, or it answers NotFound)
        try:
            renewed = provider.renew_watch(cal, live[0]["channelId"], expires)
        except errors.NotFound:
            renewed = None  # Graph removed it: make a new one
            with app.store.unit() as tx:
                tx.stop_channels([live[0]["channelId"]])
            live = live[1:]
        if renewed is not None:
            with app.store.unit() as tx:
                tx.channel_renewed(renewed.id, renewed.expires_at)
            _stop_all(app, provider, cal, [ch for ch in live if ch["channelId"] != renewed.id])
            log.info("channel renewed", extra={"calendar": run.calendar_id, "channel": renewed.id,
                                               "expires": renewed.expires_at.isoformat()})
            return
    address, lifecycle = addresses(settings.webhook_url, provider)
    secret = secrets.token_urlsafe(32)
    channel = provider.watch(cal, WatchRequest(channel_id=str(uuid.uuid4()), address=address,
                                               lifecycle_address=lifecycle, secret=secret, expires_at=expires))
    per_calendar = provider.watch_scope == "calendar" or not run.social_account_id
    with app.store.unit() as tx:
        tx.add_channel(run, channel_id=channel.id, calendar_id=run.calendar_id if per_calendar else None,
                   resource_id=channel.resource_id, secret_hash=hash_secret(secret), expires=channel.expires_at)
    _stop_all(app, provider, cal, live)
    log.info("channel created", extra={"calendar": run.calendar_id, "channel": channel.id,
                                       "expires": channel.expires_at.isoformat()})


def _stop_all(app: App, provider: Any, cal: CalendarRef, channels: list[dict[str, Any]]) -> None:
    """Stop replaced channels; one that cannot be stopped now expires on its own and is ignored."""
    for ch in channels:
        try:
            provider.unwatch(cal, ch["channelId"], ch["resourceId"])
        except errors.ProviderError as exc:
            log.warning("could not stop a replaced channel", extra={"channel": ch["channelId"],
                                                                    "error": exc.describe()})
    if channels:
        with app.store.unit() as tx:
            tx.stop_channels([ch["channelId"] for ch in channels])


def on_notification(app: App, channel_id: str, event: str) -> list[Next]:
    """Open runs for the calendars a verified notification covers (coalescing with runs in progress)."""
    with app.store.unit() as tx:
        if event == "reauthorizationRequired":
            tx.channel_due_now(channel_id)  # the run's watch step renews it (a PATCH also reauthorizes)
        elif event == "subscriptionRemoved":
            tx.stop_channels([channel_id])  # the run's watch step makes a new one
        ids = tx.calendars_of_channel(channel_id)
    metrics.notification_routed(channel_id, ids)
    if not ids:
        return []
    steps, _ = runs.open_runs(app, [1, 2], reason="watch", calendar_ids=ids)
    return steps


def orphans(app: App | None = None) -> list[str]:
    """Channels to stop because no active calendar needs them (the beat queues one task each)."""
    app = app or context()
    with app.store.unit() as tx:
        return [r["channelId"] for r in tx.orphaned_channels()]


def unwatch_orphan(app: App, channel_id: str) -> bool:
    """Stop a channel its calendars no longer need; returns whether the provider was told.

    Only with the stored access token while it is fresh: no refresh (and no re-auth notice) for a
    calendar the user unlinked. Without one, the channel is forgotten and expires on its own. The
    provider call runs with no database connection held; a second stop of the same channel is harmless.
    """
    with app.store.unit() as tx:
        rows = tx.orphaned_channels(channel_id)
    if not rows:
        return False
    ch = rows[0]
    told = False
    if ch["calendarId"] is not None and fresh_enough(ch["token"], ch["accessTokenExpirationDate"],
                                                     app.settings.token_refresh_margin):
        cal = CalendarRef(ch["calendarId"], ch["extCalendarId"], ch["socialAccountId"] or f"cal{ch['calendarId']}",
                          ch["token"])
        try:
            app.provider(ch["calendarType"]).unwatch(cal, channel_id, ch["resourceId"])
            told = True
        except errors.ProviderError as exc:
            log.warning("could not stop an unneeded channel; it expires on its own",
                        extra={"channel": channel_id, "error": exc.describe()})
    with app.store.unit() as tx:
        tx.stop_channels([channel_id])
    log.info("channel stopped: no active calendar needs it", extra={"channel": channel_id, "told": told})
    return told

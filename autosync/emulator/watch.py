"""Push notifications of the emulator: Google channels (events.watch) and Graph subscriptions.

Provider docs: https://developers.google.com/workspace/calendar/api/guides/push and
https://learn.microsoft.com/graph/change-notifications-delivery-webhooks.

The PushHub keeps channels and subscriptions, hears every event change from google_state and graph_store
(their single mutation points call ``google_changed`` / ``graph_changed`` while the emulator's lock is
held), and turns each change into deliveries queued on the Dispatcher, which sends them from its own
threads. The hub has its own lock and never takes the emulator's.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from typing import Any

from autosync.emulator import google_errors as gerr
from autosync.emulator.graph_errors import GraphError
from autosync.emulator.graph_time import graph_stamp
from autosync.emulator.watch_delivery import (
    GOOGLE_RETRY_STATUSES,
    Delivery,
    DeliveryLog,
    Dispatcher,
    PushSettings,
)

TENANT_ID = "84bd8158-6d4d-4958-8b9f-9d6445542f95"
GOOGLE_USER_AGENT = "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)"
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")


@dataclass
class Channel:
    """A Google notification channel on one calendar's events."""

    id: str
    resource_id: str
    resource_uri: str
    calendar_id: str
    account_id: str
    address: str
    token: str | None
    expiration: int  # Unix ms
    stopped: bool = False
    message_number: int = 0

    def live(self, now_ms: int) -> bool:
        """Not stopped and not expired."""
        return not self.stopped and self.expiration > now_ms


@dataclass
class Subscription:
    """A Graph change-notification subscription on a mailbox's events."""

    id: str
    account_id: str
    resource: str
    change_types: list[str]
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None
    expiration: datetime
    application_id: str
    tls_version: str = "v1_2"
    deleted: bool = False
    pending_reauth: bool = False
    message_number: int = 0

    def live(self, now: datetime) -> bool:
        """Not deleted and not expired."""
        return not self.deleted and self.expiration > now

    def to_json(self) -> dict[str, Any]:
        """The subscription resource as Graph renders it."""
        return {
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.application_id,
            "changeType": ",".join(self.change_types),
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": None,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": graph_stamp(self.expiration),
            "creatorId": self.account_id,
            "includeResourceData": False,
            "latestSupportedTlsVersion": self.tls_version,
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationUrlAppId": None,
        }


class UnknownTarget(LookupError):
    """No such channel or subscription (admin calls answer 404)."""


def resource_id_of(calendar_id: str) -> str:
    """The opaque, stable resourceId of a calendar's events collection."""
    return hashlib.sha256(f"events:{calendar_id}".encode()).hexdigest()[:27]


def _now_ms() -> int:
    return int(time.time() * 1000)


def subscription_not_found(sub_id: str) -> GraphError:
    """404 ResourceNotFound for an unknown, expired, deleted or foreign subscription."""
    return GraphError(
        404,
        "ResourceNotFound",
        f"Resource '{sub_id}' does not exist or one of its queried reference-property objects are not present.",
    )


class PushHub:
    """Channels, subscriptions, their settings and deliveries."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.settings = PushSettings()
        self.channels: list[Channel] = []  # stopped and expired ones too (push_state shows them)
        self.subscriptions: dict[str, Subscription] = {}
        self.log = DeliveryLog()
        self.dispatcher = Dispatcher(lambda: self.settings, self.log)

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the delivery threads."""
        self.dispatcher.start()

    def stop(self) -> None:
        """Stop the delivery threads."""
        self.dispatcher.stop()

    def reset(self) -> None:
        """Forget channels, subscriptions, settings, queued deliveries and the delivery log."""
        with self.lock:
            self.channels.clear()
            self.subscriptions.clear()
            self.settings = PushSettings()
            self.dispatcher.clear()
            self.log.clear()

    def update_settings(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Change settings (unknown names or wrong types raise ValueError); returns them all."""
        with self.lock:
            current = asdict(self.settings)
            for key, value in changes.items():
                if key not in current:
                    raise ValueError(f"unknown push setting {key}")
                expected = type(current[key])
                if expected is bool and not isinstance(value, bool):
                    raise ValueError(f"push setting {key} must be a boolean")
                if expected is not bool and (isinstance(value, bool) or not isinstance(value, int | float)):
                    raise ValueError(f"push setting {key} must be a number")
                current[key] = expected(value)
            self.settings = replace(self.settings, **current)
            return asdict(self.settings)

    # --- Google channels ----------------------------------------------------------------------

    def watch(
        self,
        account_id: str,
        calendar_id: str,
        resource_uri: str,
        spec: dict[str, Any],
        requested_ms: int | None,
    ) -> Channel:
        """Open a channel (400 channelIdNotUnique when a live one has the id) and queue its `sync` message."""
        now = _now_ms()
        with self.lock:
            if any(c.id == spec["id"] and c.live(now) for c in self.channels):
                raise gerr.GoogleError(400, "channelIdNotUnique", f"Channel id {spec['id']} not unique")
            longest = now + int(self.settings.google_max_ttl * 1000)
            channel = Channel(
                spec["id"],
                resource_id_of(calendar_id),
                resource_uri,
                calendar_id,
                account_id,
                spec["address"],
                spec.get("token"),
                longest if requested_ms is None else min(requested_ms, longest),
            )
            self.channels.append(channel)
            channel.message_number = 1
            self._send_channel(channel, "sync")
            return channel

    def stop_channel(self, account_id: str, channel_id: str, resource_id: str) -> None:
        """channels.stop: 404 unless the caller's live channel has this id and resourceId."""
        now = _now_ms()
        with self.lock:
            for channel in self.channels:
                mine = channel.id == channel_id and channel.account_id == account_id
                if mine and channel.resource_id == resource_id and channel.live(now):
                    channel.stopped = True
                    return
        raise gerr.GoogleError(404, "notFound", f"Channel '{channel_id}' not found for project 'autosync-emulator'")

    def google_changed(self, calendar_id: str) -> None:
        """An event of the calendar changed: `exists` to each of its live channels (unless paused)."""
        now = _now_ms()
        with self.lock:
            for channel in self.channels:
                if channel.calendar_id == calendar_id and channel.live(now):
                    channel.message_number += 1  # numbers advance even when the message is lost
                    if not self.settings.paused:
                        self._send_channel(channel, "exists")

    def _send_channel(self, channel: Channel, state: str) -> None:
        headers = {
            "User-Agent": GOOGLE_USER_AGENT,
            "Content-Type": "application/json; utf-8",
            "Content-Length": "0",
            "X-Goog-Channel-ID": channel.id,
        }
        if channel.token is not None:
            headers["X-Goog-Channel-Token"] = channel.token
        headers.update(
            {
                "X-Goog-Channel-Expiration": formatdate(channel.expiration / 1000, usegmt=True),
                "X-Goog-Resource-ID": channel.resource_id,
                "X-Goog-Resource-URI": channel.resource_uri,
                "X-Goog-Resource-State": state,
                "X-Goog-Message-Number": str(channel.message_number),
            }
        )
        self.dispatcher.submit(
            Delivery(
                "google",
                channel.id,
                channel.address,
                state,
                headers,
                retry_statuses=GOOGLE_RETRY_STATUSES,
                alive=lambda: not channel.stopped,
            )
        )

    # --- Graph subscriptions ------------------------------------------------------------------

    def add_subscription(self, sub: Subscription) -> None:
        """Store a validated subscription."""
        with self.lock:
            self.subscriptions[sub.id] = sub

    def subscription(self, account_id: str, sub_id: str) -> Subscription:
        """The caller's live subscription; 404 ResourceNotFound otherwise."""
        with self.lock:
            sub = self.subscriptions.get(sub_id)
            if sub is None or sub.account_id != account_id or not sub.live(datetime.now(UTC)):
                raise subscription_not_found(sub_id)
            return sub

    def account_subscriptions(self, account_id: str) -> list[Subscription]:
        """The caller's live subscriptions."""
        now = datetime.now(UTC)
        with self.lock:
            return [s for s in self.subscriptions.values() if s.account_id == account_id and s.live(now)]

    def renew(self, account_id: str, sub_id: str, expiration: datetime) -> Subscription:
        """PATCH: new expiration; clears a pending reauthorization."""
        with self.lock:
            sub = self.subscription(account_id, sub_id)
            sub.expiration = expiration
            sub.pending_reauth = False
            return sub

    def reauthorize(self, account_id: str, sub_id: str) -> None:
        """POST /subscriptions/{id}/reauthorize."""
        with self.lock:
            self.subscription(account_id, sub_id).pending_reauth = False

    def delete_subscription(self, account_id: str, sub_id: str) -> None:
        """DELETE /subscriptions/{id}."""
        with self.lock:
            self.subscription(account_id, sub_id).deleted = True

    def max_expiration(self) -> datetime:
        """The latest expirationDateTime a subscription may have now."""
        return datetime.now(UTC) + timedelta(minutes=self.settings.graph_max_minutes)

    def graph_changed(self, account_id: str, event_id: str, change_key: str, change: str) -> None:
        """An item of the mailbox was created/updated/deleted: notify the mailbox's live subscriptions."""
        now = datetime.now(UTC)
        resource = f"Users/{account_id}/Events/{event_id}"
        with self.lock:
            if self.settings.paused:
                return
            for sub in self.subscriptions.values():
                if sub.account_id != account_id or not sub.live(now) or change not in sub.change_types:
                    continue
                item = {
                    "subscriptionId": sub.id,
                    "subscriptionExpirationDateTime": graph_stamp(sub.expiration),
                    "changeType": change,
                    "resource": resource,
                    "resourceData": {
                        "@odata.type": "#Microsoft.Graph.Event",
                        "@odata.id": resource,
                        "@odata.etag": f'W/"{change_key}"',
                        "id": event_id,
                    },
                    "clientState": sub.client_state,
                    "tenantId": TENANT_ID,
                }
                sub.message_number += 1
                self._send_graph(sub, sub.notification_url, "change", item, while_live=True)

    def lifecycle(self, sub_id: str, event: str) -> bool:
        """Admin: send a lifecycle notification and apply its effect; True when one was queued."""
        if event not in LIFECYCLE_EVENTS:
            raise ValueError(f"lifecycle event must be one of {', '.join(LIFECYCLE_EVENTS)}")
        with self.lock:
            sub = self.subscriptions.get(sub_id)
            if sub is None or sub.deleted:
                raise UnknownTarget(f"no subscription {sub_id}")
            item = {
                "subscriptionId": sub.id,
                "subscriptionExpirationDateTime": graph_stamp(sub.expiration),
                "tenantId": TENANT_ID,
                "clientState": sub.client_state,
                "lifecycleEvent": event,
            }
            if event == "subscriptionRemoved":
                sub.deleted = True
            elif event == "reauthorizationRequired":
                sub.pending_reauth = True
            if sub.lifecycle_url is None:
                return False
            self._send_graph(sub, sub.lifecycle_url, "lifecycle", item, while_live=False)
            return True

    def _send_graph(self, sub: Subscription, url: str, kind: str, item: dict[str, Any], while_live: bool) -> None:
        self.dispatcher.submit(
            Delivery(
                "outlook",
                sub.id,
                url,
                kind,
                {"Content-Type": "application/json; charset=utf-8"},
                json.dumps({"value": [item]}).encode(),
                alive=(lambda: not sub.deleted) if while_live else None,
            )
        )

    # --- admin --------------------------------------------------------------------------------

    def expire(self, target_id: str) -> None:
        """Set a channel's or subscription's expiration to now (it stops delivering)."""
        with self.lock:
            now_ms = _now_ms()
            channels = [c for c in self.channels if c.id == target_id and not c.stopped]
            if channels:
                for channel in channels:
                    channel.expiration = min(channel.expiration, now_ms)
                return
            sub = self.subscriptions.get(target_id)
            if sub is None or sub.deleted:
                raise UnknownTarget(f"no channel or subscription {target_id}")
            sub.expiration = min(sub.expiration, datetime.now(UTC))

    def state(self) -> dict[str, Any]:
        """Every channel and subscription with its bookkeeping (admin view)."""
        now_ms, now = _now_ms(), datetime.now(UTC)
        with self.lock:
            channels = [
                {
                    "id": c.id,
                    "resourceId": c.resource_id,
                    "resourceUri": c.resource_uri,
                    "calendar_id": c.calendar_id,
                    "account_id": c.account_id,
                    "address": c.address,
                    "token": c.token,
                    "expiration": c.expiration,
                    "expired": c.expiration <= now_ms,
                    "stopped": c.stopped,
                    "live": c.live(now_ms),
                    "message_number": c.message_number,
                }
                for c in self.channels
            ]
            subscriptions = [
                {
                    **s.to_json(),
                    "account_id": s.account_id,
                    "expired": s.expiration <= now,
                    "deleted": s.deleted,
                    "live": s.live(now),
                    "pending_reauth": s.pending_reauth,
                    "message_number": s.message_number,
                }
                for s in self.subscriptions.values()
            ]
        return {"channels": channels, "subscriptions": subscriptions}

    def new_subscription_id(self) -> str:
        """A fresh subscription id."""
        return str(uuid.uuid4())

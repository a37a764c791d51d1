"""Google Calendar v3 adapter: token refresh, events.list paging with sync tokens, writes, error mapping."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import requests

from autosync import errors
from autosync.model import Event, Skipped
from autosync.normalize.google import SYNCED_EVENT_TYPES, event_from_google, page_from_google
from autosync.normalize.google_write import from_gmail_split, google_body, google_patch, google_type, unsynced_type
from autosync.providers import CalendarRef, Channel, Page, TokenGrant, WatchRequest
from autosync.providers.http import HttpEdge, classify_response, json_body, parse_retry_after
from autosync.providers.keys import google_event_id
from autosync.ratelimit import Limit
from autosync.settings import Settings

RATE_LIMIT_REASONS = {"rateLimitExceeded", "userRateLimitExceeded"}
TRANSIENT_TOKEN_ERRORS = {"internal_failure", "server_error", "temporarily_unavailable"}


def _reason(body: Any) -> str:
    try:
        errs = body["error"].get("errors") or []
        return str(errs[0].get("reason", "")) if errs else str(body["error"].get("status", ""))
    except (KeyError, TypeError, AttributeError):
        return ""


def _special(status: int, reason: str, retry_after: float | None, msg: str) -> errors.ProviderError | None:
    """Google's own rules: rate limits arrive as 403 too (provider rule 4); 410 `deleted` is a gone event."""
    if status == 403 and reason in RATE_LIMIT_REASONS:
        return errors.Throttled(msg, retry_after=retry_after, status=status, code=reason)
    if status == 403 and reason == "quotaExceeded":
        # Usage limits: a long back-off, never hammer.
        return errors.Throttled(msg, retry_after=max(retry_after or 0, 60.0), status=status, code=reason)
    if status == 410 and reason == "deleted":
        return errors.NotFound(msg, status=status, code=reason)
    return None


def classify_api(resp: requests.Response) -> errors.ProviderError | None:
    """Map a Calendar API response to the error tree (branching on the reason, not only the status)."""
    return classify_response(resp, name="google", code_of=_reason, special=_special)


def classify_token(resp: requests.Response) -> errors.ProviderError | None:
    """Map a token-endpoint response: invalid_grant is permanent, transient codes are retried."""
    status = resp.status_code
    if status < 400:
        return None
    try:
        body = resp.json()
        code = str(body.get("error", ""))
        desc = str(body.get("error_description", ""))
    except (ValueError, AttributeError):
        code, desc = "", ""
    msg = f"token endpoint {status} {code}: {desc}".strip()
    if status >= 500 or status in (408, 429) or code in TRANSIENT_TOKEN_ERRORS:
        return errors.Transient(msg, retry_after=parse_retry_after(resp.headers.get("Retry-After")),
                                status=status, code=code)
    if code in {"invalid_grant", "interaction_required", "consent_required"}:
        return errors.AuthRevoked(msg, status=status, code=code)
    if code in {"invalid_client", "unauthorized_client"}:
        return errors.ClientMisconfigured(msg, status=status, code=code)
    return errors.Permanent(msg, status=status, code=code)


def grant_from(body: Any, sent_at: float) -> TokenGrant:
    """A TokenGrant from a token response; expiry counts from the send time (provider rule 18)."""
    try:
        token = str(body["access_token"])
        expires_in = int(body.get("expires_in", 3600))  # may arrive as a string
    except (KeyError, TypeError, ValueError):
        raise errors.Transient("token response without access_token/expires_in") from None
    refresh = body.get("refresh_token") or None
    expires_at = datetime.fromtimestamp(sent_at, UTC) + timedelta(seconds=expires_in)
    return TokenGrant(access_token=token, expires_at=expires_at, refresh_token=refresh)


def rfc3339(moment: datetime) -> str:
    """UTC RFC 3339 with an explicit Z offset (timeMin needs one, provider rule 33)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class GoogleProvider:
    """Google Calendar (calendarType 1)."""

    kind = 1
    name = "google"
    window_in_cursor = False
    checks_series = False
    ids_are_keys = True
    keeps_deleted = True
    watch_scope = "calendar"
    watch_path = "/google"
    lifecycle_path: str | None = None
    # No maximum channel lifetime is documented; Google shortens a channel it will not keep that long
    # (https://developers.google.com/workspace/calendar/api/guides/push), so AUTOSYNC_WATCH_TTL is asked as is.
    max_watch_ttl: int | None = None

    def zone_hint(self, row: dict[str, Any]) -> str | None:
        """The zone the import stored for the row: the event's own, else its calendar's (an event whose
        start names no zone is in its calendar's zone)."""
        return row.get("startTimeZone")

    def writable(self, row: dict[str, Any], changed: set[str]) -> tuple[set[str], set[str]]:
        """Events from Gmail take only some changes."""
        return from_gmail_split(google_type(row), changed)

    def zone_unnamed(self, old_raw: dict[str, Any]) -> bool:
        """Google names a zone or means the calendar's."""
        return False

    def refusal(self, row: dict[str, Any]) -> str | None:
        """Event types MiPlanIt does not sync are never written."""
        return unsynced_type(row)

    # --- formats (Adapter) ---------------------------------------------------------------------------

    def read_page(self, items: list[dict[str, Any]], meta: dict[str, Any]
                  ) -> tuple[list[Event], list[Skipped], list[str]]:
        """Google lists deletions as cancelled items, so nothing is marked removed apart from them."""
        events, skipped = page_from_google(items, default_reminders=meta.get("defaultReminders") or (),
                                           calendar_tz=meta.get("timeZone"))
        return events, skipped, []

    def read_event(self, raw: dict[str, Any], zone_hint: str | None = None) -> Event:
        """An event whose start names no zone is in its calendar's zone (``zone_hint``)."""
        return event_from_google(raw, calendar_tz=zone_hint)

    def create_body(self, event: Event) -> dict[str, Any]:
        """events.insert body."""
        return google_body(event)

    def patch_body(self, old_raw: dict[str, Any], event: Event, changed: set[str], base: Event | None
                   ) -> dict[str, Any]:
        """events.patch body."""
        return google_patch(old_raw, event, changed, base=base)

    def create_key(self, calendar_id: int, event_id: int, replacing: str | None = None) -> str:
        """The client-chosen event id."""
        return google_event_id(calendar_id, event_id, replacing)

    def __init__(self, settings: Settings, edge: HttpEdge) -> None:
        self.settings = settings
        self.edge = edge

    @property
    def page_size(self) -> int:
        """Items one listing page holds at most (the size autosync asks for)."""
        return self.settings.google_page_size

    def _limits(self, account: str) -> tuple[list[Limit], list[str]]:
        app_count, app_period = self.settings.google_rate
        acc_count, acc_period = self.settings.google_account_rate
        limits = [Limit("google:app", app_count, app_period),
                  Limit(f"google:acct:{account}", acc_count, acc_period)]
        return limits, ["google:app", f"google:acct:{account}"]

    def _call(self, method: str, cal: CalendarRef, path: str, **kw: Any) -> requests.Response:
        limits, cooldowns = self._limits(cal.account)
        headers = {"Authorization": f"Bearer {cal.access_token}", **kw.pop("headers", {})}
        return self.edge.send(method, self.settings.google_api_url + path, classify=classify_api,
                              limits=limits, cooldowns=cooldowns, headers=headers, **kw)

    @staticmethod
    def _events_path(cal: CalendarRef, ext_id: str | None = None) -> str:
        path = f"/calendars/{quote(cal.ext_calendar_id or 'primary', safe='')}/events"
        return path + (f"/{quote(ext_id, safe='')}" if ext_id else "")

    def refresh(self, refresh_token: str) -> TokenGrant:
        """POST the refresh_token grant; Google normally returns no new refresh token."""
        form = {"grant_type": "refresh_token", "client_id": self.settings.google_client_id,
                "client_secret": self.settings.google_client_secret.reveal(),
                "refresh_token": refresh_token}
        sent = time.time()
        resp = self.edge.send("POST", self.settings.google_token_url, classify=classify_token,
                              limits=[], cooldowns=[], data=form)
        return grant_from(json_body(resp), sent)

    def list_changes(self, cal: CalendarRef, *, cursor: str | None, page: str | None,
                     window: tuple[datetime, datetime]) -> Page:
        """events.list: full (bounded by timeMin) or incremental (syncToken alone), one page."""
        # The same parameters in full and incremental runs, eventTypes included: Google documents only
        # the eight filters of SYNC_INCOMPATIBLE as refused with a syncToken, and asks that every other
        # parameter stay as in the listing that issued the token (discovery document, `syncToken`).
        params: dict[str, str | list[str]] = {"showDeleted": "true", "singleEvents": "false",
                                              "maxResults": str(self.settings.google_page_size),
                                              "eventTypes": list(SYNCED_EVENT_TYPES)}
        if cursor:
            params["syncToken"] = cursor
        else:
            params["timeMin"] = rfc3339(window[0])
        if page:
            params["pageToken"] = page
        body = json_body(self._call("GET", cal, self._events_path(cal), params=params))
        items = body.get("items") or []
        if not isinstance(items, list):
            raise errors.Transient("events.list without an items array")
        next_page = body.get("nextPageToken")
        sync = body.get("nextSyncToken") if not next_page else None
        if not next_page and not sync:
            raise errors.Transient("last events.list page carried no nextSyncToken")
        meta = {"defaultReminders": body.get("defaultReminders") or [], "timeZone": body.get("timeZone")}
        return Page(items=items, next_page=next_page, sync_cursor=sync, meta=meta)

    def get(self, cal: CalendarRef, ext_id: str) -> dict[str, Any] | None:
        """events.get; None when the event is gone."""
        try:
            return dict(json_body(self._call("GET", cal, self._events_path(cal, ext_id))))
        except errors.NotFound:
            return None

    def _write_params(self) -> dict[str, str]:
        return {"sendUpdates": self.settings.send_updates, "conferenceDataVersion": "1",
                "supportsAttachments": "true"}

    def create(self, cal: CalendarRef, body: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
        """events.insert with a client-chosen id; a 409 means an earlier attempt already created it."""
        payload = {**body, "id": idempotency_key}
        try:
            resp = self._call("POST", cal, self._events_path(cal), params=self._write_params(), json=payload)
            return dict(json_body(resp))
        except errors.Conflict:
            existing = self.get(cal, idempotency_key)
            if existing is None:
                raise
            return existing

    def update(self, cal: CalendarRef, ext_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """events.patch (arrays in ``body`` must already be merged: PATCH replaces them whole)."""
        resp = self._call("PATCH", cal, self._events_path(cal, ext_id), params=self._write_params(), json=body)
        return dict(json_body(resp))

    def delete(self, cal: CalendarRef, ext_id: str) -> None:
        """events.delete; 410 deleted / 404 count as success (provider rule 32)."""
        try:
            self._call("DELETE", cal, self._events_path(cal, ext_id),
                       params={"sendUpdates": self.settings.send_updates})
        except errors.NotFound:
            return

    def watch(self, cal: CalendarRef, request: WatchRequest) -> Channel:
        """events.watch: a web_hook channel whose token is our secret; Google may shorten its life."""
        body = {"id": request.channel_id, "type": "web_hook", "address": request.address,
                "token": request.secret, "expiration": str(int(request.expires_at.timestamp() * 1000))}
        # events.watch takes the list parameters too: notify only for the types that are synced.
        answer = json_body(self._call("POST", cal, self._events_path(cal) + "/watch", json=body,
                                      params={"eventTypes": list(SYNCED_EVENT_TYPES)}))
        try:
            # int64 as a JSON string (https://developers.google.com/workspace/calendar/api/guides/push);
            # the effective expiry may be earlier than asked.
            expires = datetime.fromtimestamp(int(answer["expiration"]) / 1000, UTC)
            return Channel(id=str(answer["id"]), expires_at=expires, resource_id=str(answer["resourceId"]))
        except (KeyError, TypeError, ValueError):
            raise errors.Permanent("events.watch answer without id/resourceId/expiration") from None

    def renew_watch(self, cal: CalendarRef, channel_id: str, expires_at: datetime) -> Channel | None:
        """Google has no renewal call: a new channel replaces the old one (provider rule 35)."""
        return None

    def unwatch(self, cal: CalendarRef, channel_id: str, resource_id: str | None) -> None:
        """channels.stop; a channel Google no longer knows counts as stopped."""
        try:
            self._call("POST", cal, "/channels/stop", json={"id": channel_id, "resourceId": resource_id})
        except errors.NotFound:
            return

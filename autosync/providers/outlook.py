"""Microsoft Graph adapter: token refresh with rotation, calendarView delta rounds, writes, error mapping."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import requests

from autosync import errors
from autosync.model import Event, Skipped
from autosync.normalize.outlook import event_from_graph, page_from_graph
from autosync.normalize.outlook_write import graph_body, graph_patch, unnamed_zone
from autosync.providers import CalendarRef, Channel, Page, TokenGrant, WatchRequest
from autosync.providers.google import classify_token, grant_from
from autosync.providers.http import HttpEdge, classify_response, json_body
from autosync.providers.keys import transaction_id
from autosync.ratelimit import Limit
from autosync.settings import Settings

CURSOR_CODES = {"syncstatenotfound", "resyncrequired", "syncstateinvalid"}
# Every event property autosync reads, plus cancelledOccurrences, which Graph returns only when a GET of
# a series master names it in $select (v1.0 event model in msgraph-sdk-python).
MASTER_SELECT = ",".join((
    "id", "createdDateTime", "lastModifiedDateTime", "changeKey", "categories", "transactionId",
    "originalStartTimeZone", "originalEndTimeZone", "iCalUId", "reminderMinutesBeforeStart", "isReminderOn",
    "hasAttachments", "subject", "bodyPreview", "importance", "sensitivity", "isAllDay", "isCancelled",
    "isOrganizer", "responseRequested", "seriesMasterId", "showAs", "type", "webLink", "onlineMeetingUrl",
    "isOnlineMeeting", "onlineMeetingProvider", "allowNewTimeProposals", "isDraft", "hideAttendees",
    "recurrence", "onlineMeeting", "responseStatus", "body", "start", "end", "location", "locations",
    "attendees", "organizer", "cancelledOccurrences"))


def _code(body: Any) -> str:
    try:
        return str(body["error"].get("code", ""))
    except (KeyError, TypeError, AttributeError):
        return ""


def _special(status: int, code: str, retry_after: float | None, msg: str) -> errors.ProviderError | None:
    """Graph's own rules: sync-state codes mean a gone cursor; a 412 without If-Match is transient."""
    if status == 410 or code.lower() in CURSOR_CODES:
        return errors.CursorInvalid(msg, status=status, code=code)
    if status == 412:
        # We send no If-Match; Outlook answers this transiently on plain requests
        # (https://learn.microsoft.com/graph/errors, 412 Precondition Failed).
        return errors.Transient(msg, retry_after=retry_after, status=status, code=code)
    return None


def classify_api(resp: requests.Response) -> errors.ProviderError | None:
    """Map a Graph response to the error tree, branching on the OData error code."""
    return classify_response(resp, name="graph", code_of=_code, special=_special)


def graph_time(moment: datetime) -> str:
    """UTC timestamp for startDateTime/endDateTime."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _subscription(body: Any) -> Channel:
    try:
        expires = datetime.fromisoformat(str(body["expirationDateTime"]))
        return Channel(id=str(body["id"]), expires_at=expires if expires.tzinfo else expires.replace(tzinfo=UTC))
    except (KeyError, TypeError, ValueError):
        raise errors.Permanent("subscription answer without id/expirationDateTime") from None


class OutlookProvider:
    """Outlook / Microsoft Graph (calendarType 2)."""

    kind = 2
    name = "outlook"
    window_in_cursor = True
    checks_series = True
    ids_are_keys = False
    keeps_deleted = False
    watch_scope = "mailbox"
    watch_path = "/graph"
    lifecycle_path: str | None = "/graph/lifecycle"
    # An Outlook event subscription may live at most 4,230 minutes in the subscription-lifetime table of
    # the docs repo (microsoft-graph-docs, concepts/includes/change-notifications-subscription-lifetime.md);
    # later Learn pages say 10,080. Asking for more is refused with a 400, so the smaller, older figure is
    # used: valid under both, at the cost of one renewal PATCH every ~2 days instead of ~6.
    max_watch_ttl: int | None = 4230 * 60

    def zone_hint(self, row: dict[str, Any]) -> str | None:
        """Graph names every event's zone (or none that can be named: see zone_unnamed)."""
        return None

    def writable(self, row: dict[str, Any], changed: set[str]) -> tuple[set[str], set[str]]:
        """Graph takes every change the app makes."""
        return changed, set()

    def zone_unnamed(self, old_raw: dict[str, Any]) -> bool:
        """A legacy custom zone, or none."""
        return unnamed_zone(old_raw)

    def refusal(self, row: dict[str, Any]) -> str | None:
        """Every Outlook event may be written."""
        return None

    # --- formats (Adapter) ---------------------------------------------------------------------------

    def read_page(self, items: list[dict[str, Any]], meta: dict[str, Any]
                  ) -> tuple[list[Event], list[Skipped], list[str]]:
        """A delta round marks deletions with ``@removed`` (the ids are returned apart)."""
        return page_from_graph(items)

    def read_event(self, raw: dict[str, Any], zone_hint: str | None = None) -> Event:
        """Graph names every event's zone: no hint is needed."""
        return event_from_graph(raw)

    def create_body(self, event: Event) -> dict[str, Any]:
        """POST /events body."""
        return graph_body(event)

    def patch_body(self, old_raw: dict[str, Any], event: Event, changed: set[str], base: Event | None
                   ) -> dict[str, Any]:
        """PATCH /events/{id} body."""
        return graph_patch(event, changed, old_raw, base)

    def create_key(self, calendar_id: int, event_id: int, replacing: str | None = None) -> str:
        """The transactionId."""
        return transaction_id(calendar_id, event_id, replacing)

    def __init__(self, settings: Settings, edge: HttpEdge) -> None:
        self.settings = settings
        self.edge = edge
        self._select_cancelled = True  # whether masters are fetched with $select=...cancelledOccurrences

    @property
    def page_size(self) -> int:
        """Items one listing page holds at most (the size autosync asks for)."""
        return self.settings.outlook_page_size

    def _prefer(self) -> dict[str, str]:
        # Prefer headers are not part of the delta token: send them on every request (provider rule 14).
        return {"Prefer": f'outlook.timezone="UTC", odata.maxpagesize={self.settings.outlook_page_size}, '
                          'IdType="ImmutableId"'}

    def _call(self, method: str, cal: CalendarRef, url: str, *, verbatim: bool = False,
              **kw: Any) -> requests.Response:
        app_count, app_period = self.settings.outlook_rate
        acc_count, acc_period = self.settings.outlook_account_rate
        limits = [Limit("outlook:app", app_count, app_period),
                  Limit(f"outlook:mbx:{cal.account}", acc_count, acc_period)]
        headers = {"Authorization": f"Bearer {cal.access_token}", **self._prefer(), **kw.pop("headers", {})}
        return self.edge.send(method, url, classify=classify_api, limits=limits,
                              cooldowns=["outlook:app", f"outlook:mbx:{cal.account}"],
                              slot=(f"outlook:mbx:{cal.account}", self.settings.outlook_mailbox_concurrency),
                              verbatim=verbatim, headers=headers, **kw)

    def _calendar_base(self, cal: CalendarRef) -> str:
        base = self.settings.graph_api_url + "/me"
        if cal.ext_calendar_id:
            return f"{base}/calendars/{quote(cal.ext_calendar_id, safe='')}"
        return base

    def _event_url(self, cal: CalendarRef, ext_id: str) -> str:
        """An event through its calendar where the calendar is known.

        ``/me/events/{id}`` searches only the signed-in user's own mailbox: the events of a calendar
        shared with (or delegated to) the user answer 404 there, while
        ``/me/calendars/{calId}/events/{id}`` finds them (Graph event get/update/delete and
        event-list-instances list both paths).
        """
        return f"{self._calendar_base(cal)}/events/{quote(ext_id, safe='')}"

    def _trusted(self, link: str) -> str:
        """A stored or returned nextLink/deltaLink, replayed only when it points at the configured Graph.

        The bearer token goes with it, so a link to any other host or path (a tampered cursor, a
        changed AUTOSYNC_GRAPH_API_URL) is refused unsent; the caller drops the cursor.
        """
        base = self.settings.graph_api_url.rstrip("/")
        if link.startswith((base + "/", base + "?")):
            return link
        raise errors.LinkRefused(
            "refused a Graph link that does not start with AUTOSYNC_GRAPH_API_URL "
            f"({base}); the access token was not sent and the stored cursor is dropped")

    def refresh(self, refresh_token: str) -> TokenGrant:
        """Refresh at the Microsoft token URL; the response carries a NEW refresh token (provider rule 15)."""
        form = {"grant_type": "refresh_token", "client_id": self.settings.outlook_client_id,
                "client_secret": self.settings.outlook_client_secret.reveal(),
                "scope": self.settings.outlook_scope, "refresh_token": refresh_token}
        sent = time.time()
        resp = self.edge.send("POST", self.settings.outlook_token_url, classify=classify_token,
                              limits=[], cooldowns=[], data=form)
        return grant_from(json_body(resp), sent)

    def initial_delta_url(self, cal: CalendarRef, window: tuple[datetime, datetime]) -> str:
        """The first request of a round: the window goes only here (provider rule 13)."""
        query = urlencode({"startDateTime": graph_time(window[0]), "endDateTime": graph_time(window[1])})
        return f"{self._calendar_base(cal)}/calendarView/delta?{query}"

    def list_changes(self, cal: CalendarRef, *, cursor: str | None, page: str | None,
                     window: tuple[datetime, datetime]) -> Page:
        """One delta page; links are replayed verbatim, never rebuilt (provider rule 12)."""
        link = page or cursor
        url = self._trusted(link) if link else self.initial_delta_url(cal, window)
        body = json_body(self._call("GET", cal, url, verbatim=True))
        items = body.get("value")
        if not isinstance(items, list):
            raise errors.Transient("delta page without a value array")
        next_link = body.get("@odata.nextLink")
        delta_link = body.get("@odata.deltaLink") if not next_link else None
        if not next_link and not delta_link:
            raise errors.Transient("last delta page carried no @odata.deltaLink")
        return Page(items=items, next_page=next_link, sync_cursor=delta_link)

    def instances(self, cal: CalendarRef, master_id: str, window: tuple[datetime, datetime]) -> list[dict]:
        """Every occurrence and exception of a series in the window (cancelled ones are absent)."""
        query = urlencode({"startDateTime": graph_time(window[0]), "endDateTime": graph_time(window[1]),
                           "$top": str(self.settings.outlook_page_size)})
        url: str | None = f"{self._event_url(cal, master_id)}/instances?{query}"
        found: list[dict] = []
        while url:
            body = json_body(self._call("GET", cal, self._trusted(url), verbatim=True))
            found.extend(body.get("value") or [])
            url = body.get("@odata.nextLink")
        return found

    def series_ids(self, cal: CalendarRef) -> set[str]:
        """Ids of the calendar's live series masters: one listing of ``/events`` filtered on type.

        ``/events`` lists masters and single instances, never occurrences, and takes ``$filter`` on
        ``type`` (Graph list-events); ``$select=id`` keeps the pages small.
        """
        query = urlencode({"$filter": "type eq 'seriesMaster'", "$select": "id",
                           "$top": str(self.settings.outlook_page_size)})
        url: str | None = f"{self._calendar_base(cal)}/events?{query}"
        found: set[str] = set()
        while url:
            body = json_body(self._call("GET", cal, self._trusted(url), verbatim=True))
            found.update(str(item["id"]) for item in body.get("value") or [] if isinstance(item, dict) and "id" in item)
            url = body.get("@odata.nextLink")
        return found

    def get(self, cal: CalendarRef, ext_id: str) -> dict[str, Any] | None:
        """GET one event; None when it is gone."""
        try:
            return dict(json_body(self._call("GET", cal, self._event_url(cal, ext_id))))
        except errors.NotFound:
            return None

    def master(self, cal: CalendarRef, ext_id: str) -> dict[str, Any] | None:
        """GET a series master with its ``cancelledOccurrences``; None when it is gone.

        Should a service refuse that $select (400: the property's availability has varied), the
        plain GET is used from then on: the /instances check finds cancelled occurrences anyway.
        """
        if not self._select_cancelled:
            return self.get(cal, ext_id)
        url = f"{self._event_url(cal, ext_id)}?{urlencode({'$select': MASTER_SELECT})}"
        try:
            return dict(json_body(self._call("GET", cal, url)))
        except errors.NotFound:
            return None
        except errors.Permanent as exc:
            if exc.status != 400:
                raise
            self._select_cancelled = False
            return self.get(cal, ext_id)

    def create(self, cal: CalendarRef, body: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
        """POST with transactionId, so a retried create never duplicates (provider rule 31)."""
        payload = {**body, "transactionId": idempotency_key}
        resp = self._call("POST", cal, f"{self._calendar_base(cal)}/events", json=payload)
        return dict(json_body(resp))

    def update(self, cal: CalendarRef, ext_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """PATCH the given properties (collections are replaced whole, so send merged ones)."""
        return dict(json_body(self._call("PATCH", cal, self._event_url(cal, ext_id), json=body)))

    def delete(self, cal: CalendarRef, ext_id: str) -> None:
        """DELETE; 404 ErrorItemNotFound counts as success (provider rule 32)."""
        try:
            self._call("DELETE", cal, self._event_url(cal, ext_id))
        except errors.NotFound:
            return

    def _subscriptions_url(self, subscription_id: str | None = None) -> str:
        url = f"{self.settings.graph_api_url}/subscriptions"
        return url + (f"/{quote(subscription_id, safe='')}" if subscription_id else "")

    def watch(self, cal: CalendarRef, request: WatchRequest) -> Channel:
        """POST /subscriptions on the whole mailbox (Graph cannot watch one calendar:
        https://learn.microsoft.com/graph/api/resources/subscription, the event resources).

        Graph validates both URLs before it answers: `autosync webhooks` must be reachable.
        """
        body: dict[str, Any] = {"changeType": "created,updated,deleted", "notificationUrl": request.address,
                                "resource": "me/events", "expirationDateTime": graph_time(request.expires_at),
                                "clientState": request.secret}
        if request.lifecycle_address:
            body["lifecycleNotificationUrl"] = request.lifecycle_address
        return _subscription(json_body(self._call("POST", cal, self._subscriptions_url(), json=body)))

    def renew_watch(self, cal: CalendarRef, channel_id: str, expires_at: datetime) -> Channel | None:
        """PATCH the expiry (also answers reauthorizationRequired); NotFound when Graph removed it."""
        body = {"expirationDateTime": graph_time(expires_at)}
        return _subscription(json_body(self._call("PATCH", cal, self._subscriptions_url(channel_id), json=body)))

    def unwatch(self, cal: CalendarRef, channel_id: str, resource_id: str | None) -> None:
        """DELETE /subscriptions/{id}; one already gone counts as deleted."""
        try:
            self._call("DELETE", cal, self._subscriptions_url(channel_id))
        except errors.NotFound:
            return

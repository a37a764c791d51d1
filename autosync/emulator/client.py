"""A small requests-based client for the emulator's admin API (used by tests, the demo and benchmarks)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import requests


class EmulatorClient:
    """One method per admin endpoint; raises `requests.HTTPError` on admin errors."""

    def __init__(self, admin_url: str, session: requests.Session | None = None) -> None:
        self.admin_url = admin_url.rstrip("/")
        self.session = session or requests.Session()

    def _call(
        self,
        method: str,
        path: str,
        json: Any = None,
        params: dict[str, Any] | None = None,
        check: bool = True,
    ) -> Any:
        response = self.session.request(method, self.admin_url + path, json=json, params=params, timeout=30)
        if check:
            response.raise_for_status()
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    # --- state --------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything."""
        self._call("POST", "/reset")

    def state(self) -> dict[str, Any]:
        """The whole state in the seed format."""
        result: dict[str, Any] = self._call("GET", "/state")
        return result

    def seed(self, document: dict[str, Any]) -> None:
        """Load a seed document."""
        self._call("POST", "/seed", json=document)

    # --- accounts -----------------------------------------------------------------------------

    def create_account(
        self, provider: str, email: str, account_id: str | None = None, time_zone: str | None = None
    ) -> dict[str, Any]:
        """`{"account_id", "refresh_token", "calendar_id"}` of a new account with its primary calendar."""
        body: dict[str, Any] = {"provider": provider, "email": email}
        if account_id:
            body["account_id"] = account_id
        if time_zone:
            body["time_zone"] = time_zone
        result: dict[str, Any] = self._call("POST", "/accounts", json=body)
        return result

    def create_calendar(self, account_id: str, calendar_id: str | None = None, name: str | None = None) -> str:
        """Add a calendar to an account; returns its id."""
        body = {k: v for k, v in (("calendar_id", calendar_id), ("name", name)) if v}
        return str(self._call("POST", f"/accounts/{_q(account_id)}/calendars", json=body)["calendar_id"])

    def revoke(self, account_id: str) -> None:
        """Revoke the account's grants (refresh → invalid_grant)."""
        self._call("POST", f"/accounts/{_q(account_id)}/revoke")

    def expire_access_tokens(self, account_id: str) -> None:
        """Expire every access token of the account."""
        self._call("POST", f"/accounts/{_q(account_id)}/expire-access-tokens")

    def new_refresh_token(self, account_id: str) -> str:
        """Mint a fresh valid refresh token (a re-authorization)."""
        return str(self._call("POST", f"/accounts/{_q(account_id)}/refresh-token")["refresh_token"])

    def invalidate_cursors(self, calendar_id: str) -> None:
        """Make the calendar's sync tokens / delta links answer 410."""
        self._call("POST", f"/calendars/{_q(calendar_id)}/invalidate-cursors")

    # --- Google person-edits ------------------------------------------------------------------

    def google_insert(self, calendar_id: str, event: dict[str, Any], raw: bool = False) -> dict[str, Any]:
        """Create an event as a person would in Google (``raw``: as Google itself would, e.g. from Gmail)."""
        path = f"/google/calendars/{_q(calendar_id)}/events"
        result: dict[str, Any] = self._call("POST", path, json=event, params={"raw": "true"} if raw else None)
        return result

    def google_patch(self, calendar_id: str, event_id: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Patch an event (or an instance) as a person would."""
        path = f"/google/calendars/{_q(calendar_id)}/events/{_q(event_id)}"
        result: dict[str, Any] = self._call("PATCH", path, json=patch)
        return result

    def google_update(self, calendar_id: str, event_id: str, event: dict[str, Any]) -> dict[str, Any]:
        """Replace an event as a person would."""
        path = f"/google/calendars/{_q(calendar_id)}/events/{_q(event_id)}"
        result: dict[str, Any] = self._call("PUT", path, json=event)
        return result

    def google_delete(self, calendar_id: str, event_id: str) -> None:
        """Delete an event (a master cancels the series; an instance id cancels that occurrence)."""
        self._call("DELETE", f"/google/calendars/{_q(calendar_id)}/events/{_q(event_id)}")

    def google_get(self, calendar_id: str, event_id: str) -> dict[str, Any]:
        """One stored event, raw."""
        result: dict[str, Any] = self._call("GET", f"/google/calendars/{_q(calendar_id)}/events/{_q(event_id)}")
        return result

    def google_list(self, calendar_id: str) -> list[dict[str, Any]]:
        """Every stored event of the calendar, cancelled ones included, raw."""
        return list(self._call("GET", f"/google/calendars/{_q(calendar_id)}/events")["items"])

    def google_settings(self, **settings: Any) -> dict[str, Any]:
        """Change Google behaviour switches (sync_410_reason, empty_pages, ...); returns them all."""
        result: dict[str, Any] = self._call("POST", "/google/settings", json=settings)
        return result

    # --- Outlook person-edits (pass-through to the Graph module) -------------------------------

    def outlook(self, method: str, path: str, json: Any = None, check: bool = True) -> Any:
        """Any `/_admin/outlook/...` call; `path` starts with '/'."""
        return self._call(method, "/outlook" + path, json=json, check=check)

    # --- faults, quotas, request log ----------------------------------------------------------

    def add_fault(self, kind: str = "status", count: int = 1, provider: str = "any", **spec: Any) -> dict[str, Any]:
        """Register a fault (account, calendar, endpoint, status, body, headers, delay)."""
        result: dict[str, Any] = self._call(
            "POST", "/faults", json={"kind": kind, "count": count, "provider": provider, **spec}
        )
        return result

    def faults(self) -> list[dict[str, Any]]:
        """Registered faults with their remaining counts."""
        return list(self._call("GET", "/faults")["faults"])

    def clear_faults(self) -> None:
        """Drop every fault."""
        self._call("DELETE", "/faults")

    def set_quota(self, provider: str, **spec: Any) -> dict[str, Any]:
        """Set a quota: requests_per_window, window_seconds, variant, retry_after, concurrency."""
        result: dict[str, Any] = self._call("POST", "/quotas", json={"provider": provider, **spec})
        return result

    def set_latency(self, ms: float, jitter_ms: float = 0, *, provider: str = "any", kind: str = "all",
                    endpoint: str | None = None) -> dict[str, Any]:
        """Answers of `provider` (google, outlook, any) take ms ± jitter_ms; `kind` api, oauth or all;
        `endpoint` an endpoint-name prefix (e.g. google.events.list). The most specific rule wins."""
        body = {"ms": ms, "jitter_ms": jitter_ms, "provider": provider, "kind": kind, "endpoint": endpoint}
        result: dict[str, Any] = self._call("POST", "/latency", json=body)
        return result

    def latency(self) -> list[dict[str, Any]]:
        """The latency rules in force."""
        return list(self._call("GET", "/latency")["rules"])

    def clear_latency(self) -> None:
        """No latency at all (a reset goes back to the latency the emulator was started with)."""
        self._call("DELETE", "/latency")

    def requests(self, **filters: str) -> dict[str, Any]:
        """The request log filtered by account / provider / endpoint (prefix)."""
        result: dict[str, Any] = self._call("GET", "/requests", params=filters)
        return result

    def clear_requests(self) -> None:
        """Empty the request log."""
        self._call("DELETE", "/requests")

    # --- push notifications (Google channels, Graph subscriptions) ------------------------------

    def push_state(self) -> dict[str, Any]:
        """`{"channels": [...], "subscriptions": [...]}`, stopped/deleted/expired ones included."""
        result: dict[str, Any] = self._call("GET", "/push/state")
        return result

    def push_deliveries(self, provider: str | None = None) -> list[dict[str, Any]]:
        """Every delivery attempt (and Graph validation request), oldest first; provider google|outlook."""
        params = {"provider": provider} if provider else None
        return list(self._call("GET", "/push/deliveries", params=params)["deliveries"])

    def clear_push_deliveries(self) -> None:
        """Empty the delivery log."""
        self._call("DELETE", "/push/deliveries")

    def push_settings(self, **settings: Any) -> dict[str, Any]:
        """Change push settings (google_max_ttl, graph_max_minutes, validation_timeout, notification_timeout,
        push_retries, push_retry_delay, paused); returns them all."""
        result: dict[str, Any] = self._call("POST", "/push/settings", json=settings)
        return result

    def push_lifecycle(self, subscription_id: str, event: str) -> bool:
        """Send a Graph lifecycle notification (reauthorizationRequired, subscriptionRemoved, missed) and apply
        its effect; False when the subscription has no lifecycleNotificationUrl (the effect still applies)."""
        body = {"subscription_id": subscription_id, "event": event}
        return bool(self._call("POST", "/push/lifecycle", json=body)["queued"])

    def push_expire(self, target_id: str) -> None:
        """Expire a Google channel or Graph subscription now (it stops delivering)."""
        self._call("POST", "/push/expire", json={"id": target_id})

    def push_pending(self) -> int:
        """Deliveries queued or being sent (retries included)."""
        return int(self._call("GET", "/push/queue")["pending"])

    def wait_push_idle(self, timeout: float = 5) -> None:
        """Poll until no delivery is queued or being sent; TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.push_pending():
            if time.monotonic() > deadline:
                raise TimeoutError(f"push deliveries still pending after {timeout} s")
            time.sleep(0.01)


def _q(value: str) -> str:
    return quote(value, safe="")

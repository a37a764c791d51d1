"""Fault injection, quotas and per-mailbox concurrency limits of the emulator."""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

from autosync.emulator import google_errors
from autosync.emulator.core import Response

FAULT_KINDS = ("status", "reset", "slow", "malformed")
GOOGLE_VARIANTS = ("403-rateLimitExceeded", "403-userRateLimitExceeded", "429", "403-quotaExceeded")
MALFORMED_BODY = b'{"kind": "calendar#events", "items": [{"id": "trunc'


@dataclass
class Fault:
    """The next `count` matching calls fail the way `kind` says."""

    id: int
    kind: str
    count: int
    provider: str = "any"
    account: str | None = None
    calendar: str | None = None
    endpoint: str | None = None
    status: int = 503
    body: Any = None
    body_text: str | None = None  # sent as it is (JSON no encoder would write, e.g. nested past its limit)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0

    def matches(self, provider: str, account: str | None, calendar: str | None, endpoint: str) -> bool:
        """Whether a call with these coordinates is targeted."""
        return (
            self.count > 0
            and self.provider in ("any", provider)
            and (self.account is None or self.account == account)
            and (self.calendar is None or self.calendar == calendar)
            and (self.endpoint is None or endpoint.startswith(self.endpoint))
        )


class FaultBook:
    """Registered faults; `take` consumes one matching shot."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def add(self, spec: dict[str, Any]) -> Fault:
        """Register a fault from its admin JSON."""
        kind = spec.get("kind", "status")
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {FAULT_KINDS}")
        provider = spec.get("provider", "any")
        if provider not in ("google", "outlook", "any"):
            raise ValueError("provider must be google, outlook or any")
        fault = Fault(
            id=next(self._ids),
            kind=kind,
            count=int(spec.get("count", 1)),
            provider=provider,
            account=spec.get("account"),
            calendar=spec.get("calendar"),
            endpoint=spec.get("endpoint"),
            status=int(spec.get("status", 503)),
            body=spec.get("body"),
            body_text=spec.get("body_text"),
            headers=dict(spec.get("headers") or {}),
            delay=float(spec.get("delay", 0.0)),
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, provider: str, account: str | None, calendar: str | None, endpoint: str) -> Fault | None:
        """Consume one shot of the first matching fault."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(provider, account, calendar, endpoint):
                    fault.count -= 1
                    return fault
        return None

    def list(self) -> list[dict[str, Any]]:
        """All faults with their remaining counts."""
        with self._lock:
            return [asdict(f) for f in self._faults]

    def clear(self) -> None:
        """Drop every fault."""
        with self._lock:
            self._faults.clear()


def fault_response(fault: Fault, provider: str) -> Response:
    """The response of a `status` or `malformed` fault."""
    if fault.kind == "malformed":
        return Response(200, MALFORMED_BODY, {"Content-Type": "application/json; charset=UTF-8", **fault.headers})
    if fault.body_text is not None:
        return Response(fault.status, fault.body_text.encode(), {"Content-Type": "application/json", **fault.headers})
    body = fault.body if fault.body is not None else default_error_body(provider, fault.status)
    return Response(fault.status, body, dict(fault.headers))


def default_error_body(provider: str, status: int) -> dict[str, Any]:
    """A provider-shaped error body for an injected status."""
    if provider == "google":
        return google_errors.generic(status)
    codes = {
        429: "TooManyRequests",
        503: "serviceNotAvailable",
        504: "gatewayTimeout",
        500: "generalException",
        401: "InvalidAuthenticationToken",
        404: "ErrorItemNotFound",
        410: "SyncStateNotFound",
    }
    return graph_error(codes.get(status, "generalException"), f"Injected failure {status}.")


def graph_error(code: str, message: str) -> dict[str, Any]:
    """A Graph OData error body with innerError."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    request_id = f"{int(time.time() * 1e6):x}-emulator"
    return {
        "error": {
            "code": code,
            "message": message,
            "innerError": {"date": stamp, "request-id": request_id, "client-request-id": request_id},
        }
    }


@dataclass
class Quota:
    """A request budget per account per sliding window, and the outlook concurrency cap."""

    provider: str
    requests_per_window: int | None = None
    window_seconds: float = 60.0
    variant: str | None = None
    retry_after: float | None = None
    concurrency: int | None = None


class QuotaBook:
    """Sliding-window quotas per (provider, account) and in-flight counts per mailbox."""

    def __init__(self) -> None:
        self._quotas: dict[str, Quota] = {
            "google": Quota("google"),
            "outlook": Quota("outlook", concurrency=4),
        }
        self._hits: dict[tuple[str, str], deque[float]] = {}
        self._inflight: dict[str, int] = {}
        self._rotation = itertools.count()
        self._lock = threading.Lock()

    def set(self, spec: dict[str, Any]) -> Quota:
        """Configure a provider's quota from admin JSON (unset fields keep their values)."""
        provider = spec.get("provider", "google")
        if provider not in self._quotas:
            raise ValueError("provider must be google or outlook")
        variant = spec.get("variant")
        if provider == "google" and variant not in (None, "alternate", *GOOGLE_VARIANTS):
            raise ValueError(f"variant must be one of {GOOGLE_VARIANTS}")
        with self._lock:
            quota = self._quotas[provider]
            for key in ("requests_per_window", "window_seconds", "variant", "retry_after", "concurrency"):
                if key in spec:
                    setattr(quota, key, spec[key])
            self._hits.clear()
            return quota

    def get(self) -> dict[str, Any]:
        """Current quota settings."""
        with self._lock:
            return {name: asdict(q) for name, q in self._quotas.items()}

    def reset(self) -> None:
        """Back to defaults: no request quotas, outlook concurrency 4."""
        with self._lock:
            self._quotas = {"google": Quota("google"), "outlook": Quota("outlook", concurrency=4)}
            self._hits.clear()

    def check(self, provider: str, account: str) -> Response | None:
        """Count one request; return the throttling response when over the window's budget."""
        with self._lock:
            quota = self._quotas[provider]
            if not quota.requests_per_window:
                return None
            now = time.monotonic()
            hits = self._hits.setdefault((provider, account), deque())
            while hits and hits[0] <= now - quota.window_seconds:
                hits.popleft()
            if len(hits) < quota.requests_per_window:
                hits.append(now)
                return None
            wait = quota.retry_after or max(1, int(quota.window_seconds - (now - hits[0])) + 1)
            return self._throttled(quota, wait)

    def _throttled(self, quota: Quota, wait: float) -> Response:
        if quota.provider == "google":
            variant = quota.variant or "alternate"
            if variant == "alternate":
                variant = GOOGLE_VARIANTS[next(self._rotation) % 3]
            return google_errors.rate_limited(variant, quota.retry_after).response()
        code = quota.variant or "ApplicationThrottled"
        message = (
            "Application is over its MailboxConcurrency limit."
            if code == "ApplicationThrottled"
            else "Please retry again later."
        )
        return Response(429, graph_error(code, message), {"Retry-After": str(int(wait))})

    def enter(self, account: str) -> Response | None:
        """Take an in-flight slot of an outlook mailbox; the response is the 429 when none is free."""
        with self._lock:
            limit = self._quotas["outlook"].concurrency
            current = self._inflight.get(account, 0)
            if limit and current >= limit:
                body = {
                    "error": {
                        "code": "ApplicationThrottled",
                        "message": "Application is over its MailboxConcurrency limit.",
                    }
                }
                return Response(429, body, {"Retry-After": str(int(self._quotas["outlook"].retry_after or 1))})
            self._inflight[account] = current + 1
            return None

    def leave(self, account: str) -> None:
        """Release an in-flight slot."""
        with self._lock:
            self._inflight[account] = max(0, self._inflight.get(account, 0) - 1)

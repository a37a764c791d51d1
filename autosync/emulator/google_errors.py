"""Google Calendar API error bodies as the real API sends them (https://developers.google.com/workspace/calendar/api/guides/errors)."""

from __future__ import annotations

from typing import Any

from autosync.emulator.core import Request, Response


class GoogleError(Exception):
    """A Google API error carrying its status and legacy `errors[]` entry."""

    def __init__(
        self,
        status: int,
        reason: str | None,
        message: str,
        *,
        domain: str = "global",
        location_type: str | None = None,
        location: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.domain = domain
        self.location_type = location_type
        self.location = location
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON error document."""
        entry: dict[str, Any] = {"domain": self.domain}
        if self.reason is not None:
            entry["reason"] = self.reason
        entry["message"] = self.message
        if self.location_type:
            entry["locationType"] = self.location_type
            entry["location"] = self.location
        return {"error": {"errors": [entry], "code": self.status, "message": self.message}}

    def response(self) -> Response:
        """As an HTTP response."""
        return Response(self.status, self.body(), dict(self.headers))


def auth_error() -> GoogleError:
    """401 authError for a missing, unknown or expired access token."""
    return GoogleError(
        401,
        "authError",
        "Invalid Credentials",
        location_type="header",
        location="Authorization",
        headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="invalid_token"'},
    )


def not_found() -> GoogleError:
    """404 notFound."""
    return GoogleError(404, "notFound", "Not Found")


def deleted() -> GoogleError:
    """410 deleted: the event is already deleted."""
    return GoogleError(410, "deleted", "Resource has been deleted")


def duplicate() -> GoogleError:
    """409 duplicate: a client-chosen id already exists."""
    return GoogleError(409, "duplicate", "The requested identifier already exists.")


def condition_not_met() -> GoogleError:
    """412 conditionNotMet for an If-Match mismatch."""
    return GoogleError(412, "conditionNotMet", "Precondition Failed", location_type="header", location="If-Match")


def bad_request(message: str = "Bad Request", reason: str = "badRequest") -> GoogleError:
    """A plain 400."""
    return GoogleError(400, reason, message)


def event_type_restriction(message: str) -> GoogleError:
    """400 eventTypeRestriction: the event's type does not allow this write (e.g. creating fromGmail)."""
    return GoogleError(400, "eventTypeRestriction", message)


def invalid_param(name: str, message: str = "Invalid Value") -> GoogleError:
    """400 invalid for one query parameter."""
    return GoogleError(400, "invalid", message, location_type="parameter", location=name)


def full_sync_required(with_reason: bool = True) -> GoogleError:
    """410 for an invalid or expired sync token; optionally the variant without a reason."""
    message = "Sync token is no longer valid, a full sync is required."
    if with_reason:
        return GoogleError(
            410,
            "fullSyncRequired",
            message,
            domain="calendar",
            location_type="parameter",
            location="syncToken",
        )
    return GoogleError(410, None, message, domain="calendar")


def updated_min_too_long_ago() -> GoogleError:
    """410 updatedMinTooLongAgo."""
    return GoogleError(
        410,
        "updatedMinTooLongAgo",
        "The requested minimum modification time lies too far in the past.",
        domain="calendar",
        location_type="parameter",
        location="updatedMin",
    )


def rate_limited(variant: str, retry_after: float | None = None) -> GoogleError:
    """A usage-limit error: 403/429 rateLimitExceeded, 403 userRateLimitExceeded or 403 quotaExceeded."""
    headers = {"Retry-After": str(int(retry_after))} if retry_after else {}
    if variant == "403-userRateLimitExceeded":
        return GoogleError(
            403, "userRateLimitExceeded", "User Rate Limit Exceeded", domain="usageLimits", headers=headers
        )
    if variant == "403-quotaExceeded":
        return GoogleError(
            403, "quotaExceeded", "Calendar usage limits exceeded.", domain="usageLimits", headers=headers
        )
    status = 429 if variant == "429" else 403
    return GoogleError(status, "rateLimitExceeded", "Rate Limit Exceeded", domain="usageLimits", headers=headers)


def generic(status: int) -> dict[str, Any]:
    """A plausible body for an injected status fault (backendError for 5xx)."""
    if status >= 500:
        return GoogleError(status, "backendError", "Backend Error").body()
    if status == 401:
        return auth_error().body()
    if status == 403:
        return rate_limited("403-rateLimitExceeded").body()
    if status == 429:
        return rate_limited("429").body()
    return GoogleError(status, "badRequest", "Bad Request").body()


def json_body(req: Request) -> dict[str, Any]:
    """A request's JSON object body, or Google's 400 parseError."""
    try:
        payload = req.json()
    except (ValueError, UnicodeDecodeError) as exc:
        raise GoogleError(400, "parseError", "Parse Error") from exc
    if not isinstance(payload, dict):
        raise GoogleError(400, "parseError", "Parse Error")
    return payload

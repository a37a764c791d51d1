"""One error tree for both providers; each error knows whether it is worth retrying.

What an error means for a run is read from three attributes, by one function (autosync/retries.py):
``retryable`` (a later attempt of the same work can succeed), ``retry_after`` (the wait, in seconds,
the other side asked for) and ``waits_only`` (our own limiter's "not yet": nothing failed).
"""

from __future__ import annotations


class AutosyncError(Exception):
    """Base of every autosync error."""

    retryable: bool = False
    waits_only: bool = False
    retry_after: float | None = None


class ConfigError(AutosyncError):
    """Invalid configuration; names the variable, never its secret value."""


class ServiceUnavailable(AutosyncError):
    """PostgreSQL or the broker cannot be reached; names the service and its variable, never credentials."""

    retryable = True

    def __init__(self, service: str, variable: str, where: str, reason: str) -> None:
        super().__init__(f"cannot connect to {service} at {where} ({variable}): {reason}")
        self.service = service
        self.variable = variable


class MigrationError(AutosyncError):
    """A migration could not be loaded or applied; says which and what to do."""


class SchemaNotReady(AutosyncError):
    """The database lacks autosync's tables or columns: `autosync db upgrade` has not been run on it."""


class ProviderError(AutosyncError):
    """A provider answered with an error, or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code

    def describe(self) -> str:
        """Short text for run records: class, status, provider code, message."""
        parts = [type(self).__name__]
        if self.status is not None:
            parts.append(str(self.status))
        if self.code:
            parts.append(self.code)
        return " ".join(parts) + f": {self}"


class AuthRevoked(ProviderError):
    """The refresh token is revoked or expired (invalid_grant): the user must re-authorize."""


class AuthInvalid(ProviderError):
    """The access token was refused (401); refresh once, then give up.

    The refresh-and-retry-once happens in place (services catch it around the provider call), so the
    one that escapes them was refused right after a refresh: not retryable.
    """


class ClientMisconfigured(ProviderError):
    """invalid_client / unauthorized_client: the app's credentials are wrong (an operator problem)."""


class TokenUnreadable(ProviderError):
    """A stored OAuth token cannot be decrypted with AUTOSYNC_TOKEN_KEYS (an operator problem, like
    ClientMisconfigured): the run fails with the reason, never with the token; other calendars go on."""


class Throttled(ProviderError):
    """Rate limited (429, Google 403 rate-limit reasons, Graph ApplicationThrottled)."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class Transient(ProviderError):
    """Network failure, timeout, 5xx, temporarily_unavailable: retry with backoff."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class CursorInvalid(ProviderError):
    """The stored sync token / delta link is no longer valid (410, SyncStateNotFound): full resync."""


class NotFound(ProviderError):
    """The event or calendar does not exist (404) or is already deleted (410 on delete)."""


class CalendarGone(ProviderError):
    """Listing the calendar itself answered 404: it was deleted or unshared at the provider."""


class Conflict(ProviderError):
    """409: the client-chosen id already exists (an earlier attempt of the same insert succeeded)."""


class PreconditionFailed(ProviderError):
    """412: the etag / change key no longer matches."""


class Permanent(ProviderError):
    """Any other 4xx: retrying the same request cannot succeed."""


class LinkRefused(Permanent):
    """A stored or returned paging/delta link points outside the configured API URL: never followed."""


class CalendarInactive(AutosyncError):
    """The calendar was switched off (unlinked) in the app while its run was open: the run fails."""


class NormalizeError(AutosyncError):
    """A provider item is malformed; the item is skipped and recorded, the calendar keeps syncing."""

    def __init__(self, ext_id: str, reason: str) -> None:
        super().__init__(f"{ext_id or '<no id>'}: {reason}")
        self.ext_id = ext_id
        self.reason = reason


class RateLimited(AutosyncError):
    """Our own cluster-wide limiter says wait; the task is rescheduled with this countdown.

    No request was sent: a wait, not a failure, so it is never given up on.
    """

    retryable = True
    waits_only = True

    def __init__(self, key: str, wait: float) -> None:
        super().__init__(f"rate limit {key}: wait {wait:.2f}s")
        self.key = key
        self.retry_after = wait

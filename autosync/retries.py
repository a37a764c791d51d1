"""One place maps an error to retry, wait or fail, from the error's own attributes.

Every autosync error says whether a later attempt can succeed (``retryable``), how long the other
side asked us to wait (``retry_after``), and whether it is only a wait of our own cluster limiter
(``waits_only``: no request was sent, nothing failed). :func:`decide` reads those, plus the few
foreign errors that mean "our own PostgreSQL, Redis or time budget was briefly short", and returns
what to do. It is pure (randomness injectable), so it is tested table by table; the Celery steps
(tasks.py), sync-back entries (services/syncback.py) and the watch step (services/watch.py) act on it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
import redis
from billiard.exceptions import SoftTimeLimitExceeded

from autosync import errors

# Ours, not the provider's, and brief: PostgreSQL or Redis away for a moment, or a step that ran out
# of its soft time limit (the next attempt resumes from the stored cursor).
INFRASTRUCTURE = (psycopg.OperationalError, redis.RedisError, SoftTimeLimitExceeded)


@dataclass(frozen=True)
class Retry:
    """Try again after ``delay`` seconds; this attempt failed and counts towards the retry limit."""

    delay: float


@dataclass(frozen=True)
class Wait:
    """Our own limiter asked for patience: try again after ``delay`` seconds, never given up."""

    delay: float


@dataclass(frozen=True)
class Fail:
    """Give up: the run (or the outbox entry) ends with ``outcome``."""

    outcome: str  # "failed" or "needs_reauth"
    prefix: str = ""  # what comes before the error's own (scrubbed) text
    deactivate: bool = False  # the calendar itself is gone at the provider
    unexpected: bool = False  # not an error autosync knows: worth a traceback in the log

    def message(self, described: str) -> str:
        """The text stored on the run: the prefix, then the scrubbed description of the error."""
        return f"{self.prefix}: {described}" if self.prefix else described


Decision = Retry | Wait | Fail


def retryable(exc: BaseException) -> bool:
    """Whether a later attempt of the same work can succeed."""
    if isinstance(exc, errors.AutosyncError):
        return exc.retryable
    return isinstance(exc, INFRASTRUCTURE)


def wait_hint(exc: BaseException) -> float | None:
    """The wait the other side asked for (Retry-After, our limiter), in seconds, if any."""
    return exc.retry_after if isinstance(exc, errors.AutosyncError) else None


def backoff(attempt: int, cap: float, uniform: Callable[[float, float], float] = random.uniform) -> float:
    """Jittered exponential backoff for attempt 0, 1, 2…: between e/2 and e, e = min(cap, 2**(attempt+1))."""
    expo = min(float(cap), 2.0 ** (attempt + 1))
    return uniform(expo / 2, expo)


def decide(exc: BaseException, attempt: int, *, max_retries: int | None, backoff_cap: float,
           uniform: Callable[[float, float], float] = random.uniform) -> Decision:
    """What to do about ``exc``, raised by attempt number ``attempt`` (0 for the first).

    ``max_retries`` None means retry without limit (sync-back entries wait for a later run).
    """
    hint = wait_hint(exc)
    if isinstance(exc, errors.AutosyncError) and exc.waits_only:
        return Wait((hint or 0.0) + uniform(0.0, 0.5))
    if retryable(exc):
        if max_retries is not None and attempt >= max_retries:
            return Fail("failed", f"gave up after {attempt} retries")
        return Retry(max(hint or 0.0, backoff(attempt, backoff_cap, uniform)))
    if isinstance(exc, errors.AuthRevoked):
        return Fail("needs_reauth")
    if isinstance(exc, errors.AuthInvalid):
        # Refused again right after a refresh (services refresh once in place): retrying cannot help.
        return Fail("failed", "access token refused after a refresh")
    if isinstance(exc, errors.CalendarGone):
        return Fail("failed", "calendar gone at the provider, deactivated", deactivate=True)
    if isinstance(exc, errors.AutosyncError):
        return Fail("failed")
    return Fail("failed", "internal error", unexpected=True)

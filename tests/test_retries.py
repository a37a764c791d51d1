"""The one classifier of errors into retry, wait or fail (autosync/retries.py), table by table."""

from __future__ import annotations

import psycopg
import pytest
import redis
from billiard.exceptions import SoftTimeLimitExceeded

from autosync import errors
from autosync.retries import Fail, Retry, Wait, backoff, decide, retryable, wait_hint


def _top(low: float, high: float) -> float:
    return high


def _bottom(low: float, high: float) -> float:
    return low


def _decide(exc: BaseException, attempt: int = 0, max_retries: int | None = 8, cap: float = 600,
            uniform=_top) -> object:
    return decide(exc, attempt, max_retries=max_retries, backoff_cap=cap, uniform=uniform)


@pytest.mark.parametrize(("exc", "expected"), [
    # Worth another attempt: the provider's hiccups, throttling, and our own services briefly away.
    (errors.Transient("503", status=503), Retry(2.0)),
    (errors.Throttled("429", status=429), Retry(2.0)),
    (errors.ServiceUnavailable("PostgreSQL", "AUTOSYNC_DATABASE_URL", "db:5432", "refused"), Retry(2.0)),
    (psycopg.OperationalError("server closed the connection"), Retry(2.0)),
    (redis.ConnectionError("refused"), Retry(2.0)),
    (SoftTimeLimitExceeded(), Retry(2.0)),
    # Our own limiter: a wait (its hint plus at most half a second of jitter), not a failure.
    (errors.RateLimited("google:acct", 3.0), Wait(3.5)),
    # Retrying cannot help.
    (errors.AuthRevoked("invalid_grant", status=400), Fail("needs_reauth")),
    (errors.AuthInvalid("401", status=401), Fail("failed", "access token refused after a refresh")),
    (errors.CalendarGone("404", status=404), Fail("failed", "calendar gone at the provider, deactivated",
                                                  deactivate=True)),
    (errors.Permanent("400", status=400), Fail("failed")),
    (errors.LinkRefused("elsewhere"), Fail("failed")),
    (errors.ClientMisconfigured("invalid_client"), Fail("failed")),
    (errors.TokenUnreadable("no key"), Fail("failed")),
    (errors.CursorInvalid("410", status=410), Fail("failed")),
    (errors.NotFound("404", status=404), Fail("failed")),
    (errors.PreconditionFailed("412", status=412), Fail("failed")),
    (errors.Conflict("409", status=409), Fail("failed")),
    (errors.NormalizeError("ev1", "no start"), Fail("failed")),
    (errors.SchemaNotReady("run autosync db upgrade"), Fail("failed")),
    (errors.CalendarInactive("calendar is not active"), Fail("failed")),
    (KeyError("calendarId"), Fail("failed", "internal error", unexpected=True)),
    (psycopg.errors.UndefinedColumn("no such column"), Fail("failed", "internal error", unexpected=True)),
])
def test_each_error_maps_to_one_decision(exc: BaseException, expected: object) -> None:
    assert _decide(exc) == expected


@pytest.mark.parametrize("kind", [cls for cls in (errors.Transient, errors.Throttled)])
def test_the_wait_the_provider_asked_for_is_a_floor_of_the_backoff(kind: type) -> None:
    assert _decide(kind("slow down", retry_after=90.0)) == Retry(90.0)
    assert _decide(kind("slow down", retry_after=0.1)) == Retry(2.0)  # the backoff is longer


@pytest.mark.parametrize(("attempt", "max_retries", "expected"), [
    (0, 3, Retry(1.0)),
    (2, 3, Retry(4.0)),
    (3, 3, Fail("failed", "gave up after 3 retries")),
    (9, 3, Fail("failed", "gave up after 9 retries")),
    (0, 0, Fail("failed", "gave up after 0 retries")),
    (50, None, Retry(300.0)),  # sync-back entries are never given up on: the backoff is capped
])
def test_retries_are_bounded_and_back_off_exponentially(attempt: int, max_retries: int | None,
                                                        expected: object) -> None:
    assert _decide(errors.Transient("503"), attempt, max_retries, uniform=_bottom) == expected


def test_a_wait_of_our_own_limiter_is_never_given_up_on() -> None:
    assert _decide(errors.RateLimited("k", 1.0), attempt=99, max_retries=3, uniform=_bottom) == Wait(1.0)


@pytest.mark.parametrize(("attempt", "cap", "low", "high"), [
    (0, 600, 1.0, 2.0), (1, 600, 2.0, 4.0), (4, 600, 16.0, 32.0), (4, 10, 5.0, 10.0), (40, 2, 1.0, 2.0),
])
def test_backoff_is_jittered_between_half_and_the_whole_exponential_step(attempt: int, cap: float, low: float,
                                                                         high: float) -> None:
    assert backoff(attempt, cap, _bottom) == low and backoff(attempt, cap, _top) == high
    for _ in range(50):
        assert low <= backoff(attempt, cap) <= high


def _subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


def _instance(cls: type) -> errors.AutosyncError:
    if issubclass(cls, errors.ServiceUnavailable):
        return cls("PostgreSQL", "AUTOSYNC_DATABASE_URL", "db", "down")
    if issubclass(cls, errors.NormalizeError):
        return cls("ev", "bad")
    if issubclass(cls, errors.RateLimited):
        return cls("key", 2.0)
    return cls("boom")


@pytest.mark.parametrize("cls", _subclasses(errors.AutosyncError), ids=lambda c: c.__name__)
def test_retryable_means_what_the_classifier_does(cls: type) -> None:
    """An error's own ``retryable`` is the whole story: retried (or waited for) exactly when it says so."""
    exc = _instance(cls)
    assert retryable(exc) is exc.retryable
    assert isinstance(_decide(exc), Retry | Wait) is exc.retryable
    assert exc.waits_only is isinstance(_decide(exc), Wait)


def test_the_wait_hint_has_one_name_on_every_error() -> None:
    assert wait_hint(errors.RateLimited("k", 2.5)) == 2.5
    assert wait_hint(errors.Throttled("t", retry_after=7.0)) == 7.0
    assert wait_hint(errors.Transient("t", retry_after=3.0)) == 3.0
    assert wait_hint(errors.Permanent("p")) is None and wait_hint(ValueError("x")) is None


def test_a_token_refused_after_the_refresh_is_not_declared_retryable() -> None:
    """It used to say retryable while every caller failed the run on it."""
    assert errors.AuthInvalid.retryable is False


def test_the_stored_message_prefixes_the_scrubbed_description() -> None:
    assert Fail("failed", "internal error").message("KeyError: 'x'") == "internal error: KeyError: 'x'"
    assert Fail("needs_reauth").message("AuthRevoked 400 invalid_grant: x") == "AuthRevoked 400 invalid_grant: x"

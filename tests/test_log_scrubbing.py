"""Log lines and stored error texts carry no token or secret, whatever shape the secret arrives in."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from autosync.log import install
from autosync.redact import describe, scrub

SECRET = "client-secret-value"


@pytest.fixture()
def logged() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger whose one handler is installed the way the worker and CLI install theirs."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    install(handler, [SECRET])
    logger = logging.getLogger(f"autosync.test.{id(out)}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield logger, out
    logger.removeHandler(handler)


def _lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]  # every line stays valid JSON


def test_nested_extra_values_are_scrubbed_by_key_and_by_shape(logged) -> None:
    logger, out = logged
    logger.info("request", extra={
        "request": {"headers": {"Authorization": "Bearer opaque-bearer-1"}, "body": {"token": "opaque-token-2"}},
        "items": [{"refresh_token": "opaque-refresh-3"}, ("x", SECRET)],
        "grant": {"nested": {"deeper": [{"client_secret": "opaque-secret-4"}]}},
    })
    text = out.getvalue()
    for value in ("opaque-bearer-1", "opaque-token-2", "opaque-refresh-3", "opaque-secret-4", SECRET):
        assert value not in text
    line = _lines(out)[0]
    assert line["request"]["body"]["token"] == "***"  # type: ignore[index]


def test_url_encoded_json_and_forms_are_scrubbed(logged) -> None:
    logger, out = logged
    logger.warning("callback https://app.example/cb?state=%7B%22access_token%22%3A%22opaque-at-5%22%2C%22n%22%3A1%7D")
    logger.warning("body", extra={"form": "grant_type=refresh_token&refresh_token=1%2F%2F0gopaque-rt-6&x=1"})
    text = out.getvalue()
    assert "opaque-at-5" not in text and "opaque-rt-6" not in text
    assert "x=1" in text  # the rest of the form is still readable


def test_percent_formatted_messages_are_scrubbed(logged) -> None:
    logger, out = logged
    logger.info("sent headers %s to %s", {"Authorization": "Basic dXNlcjpvcGFxdWUtYmFzaWMtNw=="},
                "https://u:opaque-url-password-8@example.com/x")
    logger.info("refreshed: %s", "ya29.opaque-google-access-9")
    text = out.getvalue()
    for value in ("dXNlcjpvcGFxdWUtYmFzaWMtNw", "opaque-url-password-8", "opaque-google-access-9"):
        assert value not in text


def test_tracebacks_are_scrubbed(logged) -> None:
    logger, out = logged
    try:
        raise ValueError("Invalid header value b'Bearer ya29.opaque-in-traceback\\n' and " + SECRET)
    except ValueError:
        logger.exception("step crashed", extra={"run": 1})
    line = _lines(out)[0]
    assert "ValueError" in line["exc"]  # type: ignore[operator]
    assert "opaque-in-traceback" not in out.getvalue() and SECRET not in out.getvalue()


def test_celerys_task_error_context_is_logged_without_its_traceback_text(logged) -> None:
    """Celery puts the traceback in its log context even for an expected failure (a step that failed
    its run): one line, no traceback; a crash still has its traceback, once, as "exc"."""
    logger, out = logged
    context = {"name": "autosync.fetch_page", "exc": "StepFailed('run 1 failed: Permanent 403')",
               "traceback": "Traceback (most recent call last):\n  File ...", "args": "run=1 calendar=2"}
    logger.info("Task %(name)s raised expected: %(exc)s", context, extra={"data": context})
    try:
        raise KeyError("calendarId")
    except KeyError:
        logger.error("Task %(name)s raised unexpected: %(exc)s", context, exc_info=True, extra={"data": context})
    expected, crashed = _lines(out)
    assert "Traceback" not in json.dumps(expected)
    assert expected["data"] == {k: v for k, v in context.items() if k != "traceback"}
    assert json.dumps(crashed).count("Traceback") == 1 and "KeyError" in crashed["exc"]  # type: ignore[operator]


def test_cursors_and_ordinary_text_stay_readable() -> None:
    text = "GET /events?syncToken=CPDAlvWDx70CEPDAlvWDx70CGAU&pageToken=abc token refreshed for calendar 7"
    assert scrub(text) == text


def test_describe_reduces_an_exception_to_a_scrubbed_line() -> None:
    exc = RuntimeError('failed: {"access_token": "opaque-a", "refresh_token": "1//0gopaque-b"}\n'
                       "Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl")
    text = describe(exc, [SECRET])
    assert text.startswith("RuntimeError: failed:") and "\n" not in text
    for value in ("opaque-a", "opaque-b", "eyJhbGci"):
        assert value not in text

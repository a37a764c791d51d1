"""Every way a request can fail without an HTTP answer becomes an error of the tree, described safely.

requests' own messages quote header values and URLs: a stored token with a trailing newline made
requests raise InvalidHeader with the bearer token in its text, which reached the run records.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from autosync import errors
from autosync.providers.http import HttpEdge, Policy

TOKEN = "ya29.a0-opaque-access-token-value"
QUERY_SECRET = "opaque-query-secret"


@pytest.fixture()
def raw_server() -> Iterator[tuple[str, list[bytes]]]:
    """A loopback server that answers each connection with the next canned byte string, then closes."""
    answers: list[bytes] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                if answers:
                    conn.sendall(answers.pop(0))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", answers
    stop.set()
    listener.close()


def _send(url: str, **kwargs: object) -> BaseException:
    edge = HttpEdge(Policy(connect_timeout=2, read_timeout=2, retries=0, backoff_cap=0, max_inline_wait=0), None)
    with pytest.raises(Exception) as info:
        edge.send("GET", url, classify=lambda resp: None, limits=[], cooldowns=[], **kwargs)
    return info.value


def _safe(exc: BaseException) -> str:
    text = f"{exc} {exc!r} {getattr(exc, 'describe', lambda: '')()}"
    assert TOKEN not in text and QUERY_SECRET not in text and "Bearer" not in text
    assert exc.__cause__ is None and exc.__suppress_context__
    return text


@pytest.mark.parametrize("token", [TOKEN + "\n", TOKEN + "\r", TOKEN + "\r\nX-Injected: 1"])
def test_a_token_that_cannot_be_a_header_is_a_permanent_error_without_the_token(raw_server, token: str) -> None:
    base, _ = raw_server
    exc = _send(f"{base}/calendar?access_token={QUERY_SECRET}", headers={"Authorization": f"Bearer {token}"})
    assert type(exc) is errors.Permanent
    assert "InvalidHeader" in _safe(exc) and "127.0.0.1" in str(exc)


def test_a_token_that_is_not_latin1_is_a_permanent_error_without_the_token(raw_server) -> None:
    base, _ = raw_server
    exc = _send(f"{base}/calendar", headers={"Authorization": f"Bearer {TOKEN}\u00e9\u20ac"})
    assert type(exc) is errors.Permanent
    _safe(exc)


def test_a_malformed_url_is_a_permanent_error_without_its_query() -> None:
    exc = _send(f"http://[::1/calendar?access_token={QUERY_SECRET}")
    assert type(exc) is errors.Permanent
    _safe(exc)


@pytest.mark.parametrize(("answer", "kind"), [
    (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 10\r\n\r\nnot gzip!!", "ContentDecodingError"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc", "ChunkedEncodingError"),
    (b"this is not HTTP\r\n\r\n", "ConnectionError"),
    (b"", "ConnectionError"),
])
def test_a_broken_answer_is_a_transient_error_without_url_or_headers(raw_server, answer: bytes, kind: str) -> None:
    base, answers = raw_server
    answers.append(answer)
    exc = _send(f"{base}/calendar?access_token={QUERY_SECRET}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert type(exc) is errors.Transient and exc.retryable
    assert kind in _safe(exc)


def test_a_refused_connection_names_the_host_only() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    exc = _send(f"http://127.0.0.1:{port}/calendar?access_token={QUERY_SECRET}",
                headers={"Authorization": f"Bearer {TOKEN}"})
    assert type(exc) is errors.Transient
    assert "127.0.0.1" in _safe(exc)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "Infinity", "1e999"])
def test_a_non_finite_retry_after_is_ignored(value: str) -> None:
    from autosync.providers.http import parse_retry_after

    assert parse_retry_after(value) is None  # an infinite countdown would park the task for ever

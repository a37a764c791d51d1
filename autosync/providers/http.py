"""The HTTP edge shared by both adapters: session, timeouts, limits, short retries, error mapping."""

from __future__ import annotations

import contextvars
import email.utils
import http.client
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from autosync import metrics
from autosync.errors import (
    AuthInvalid,
    Conflict,
    CursorInvalid,
    NotFound,
    Permanent,
    PreconditionFailed,
    ProviderError,
    RateLimited,
    Throttled,
    Transient,
)
from autosync.providers.jsontext import loads_bounded
from autosync.ratelimit import Limit, RateLimiter

log = logging.getLogger(__name__)


@dataclass
class RequestStats:
    """Provider requests made inside one unit of work (a task), for run records.

    Counters nest: a request counts in every enclosing ``counting()`` block.
    """

    count: int = 0
    parent: RequestStats | None = None

    def add(self) -> None:
        """Count one request here and in the enclosing blocks."""
        self._change(1)

    def settle(self, n: int) -> None:
        """``n`` of the requests counted here were written to the run already: take them out of this
        block and the enclosing ones, so a step that fails later does not record them twice."""
        self._change(-n)

    def _change(self, n: int) -> None:
        # Under one lock: a full listing's lister thread counts its requests while the step's thread
        # settles the ones it wrote, and `count += n` is a read and a write another thread can split.
        with _STATS_LOCK:
            node: RequestStats | None = self
            while node is not None:
                node.count += n
                node = node.parent


_STATS_LOCK = threading.Lock()


_stats: contextvars.ContextVar[RequestStats | None] = contextvars.ContextVar("autosync_stats", default=None)


@contextmanager
def counting() -> Iterator[RequestStats]:
    """Count provider requests made inside the block."""
    stats = RequestStats(parent=_stats.get())
    token = _stats.set(stats)
    try:
        yield stats
    finally:
        _stats.reset(token)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: integer seconds, fractional seconds, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:  # "nan" or "inf" is no usable wait: ignore it like any other malformed header
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


_local = threading.local()


def session() -> requests.Session:
    """A keep-alive session per thread (requests.Session is not thread-safe)."""
    s: requests.Session | None = getattr(_local, "session", None)
    if s is None:
        s = requests.Session()
        # Sized for one thread of the threads pool: it sends one request at a time, so it keeps one
        # keep-alive connection per host and never returns a second one to a full pool (urllib3's
        # "Connection pool is full, discarding connection"; the benchmark counts them: none). Four
        # host pools: Google's token and API hosts, Microsoft's login and Graph hosts.
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=8, max_retries=0)
        s.mount("http://", adapter)
        s.mount("https://", adapter)
        _local.session = s
    return s


Classifier = Callable[[requests.Response], ProviderError | None]
# A provider's own rules, tried before the common ones: (status, code, retry_after, message) -> error.
Special = Callable[[int, str, float | None, str], ProviderError | None]


def classify_response(resp: requests.Response, *, name: str, code_of: Callable[[Any], str],
                      special: Special) -> ProviderError | None:
    """Map an HTTP response to the error tree: the provider's rules first, then the common ones."""
    status = resp.status_code
    if status < 400:
        return None
    try:
        body = resp.json()
    except ValueError:
        body = None
    code = code_of(body)
    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
    msg = f"{name} {status} {code}".strip()
    found = special(status, code, retry_after, msg)
    if found is not None:
        return found
    kinds: dict[int, type[ProviderError]] = {401: AuthInvalid, 404: NotFound, 409: Conflict,
                                             410: CursorInvalid, 412: PreconditionFailed}
    if status == 429:
        return Throttled(msg, retry_after=retry_after, status=status, code=code)
    if status >= 500 or status == 408:
        return Transient(msg, retry_after=retry_after, status=status, code=code)
    return kinds.get(status, Permanent)(msg, status=status, code=code)


@dataclass(frozen=True)
class Policy:
    """The one retry and limit policy for provider calls."""

    connect_timeout: float
    read_timeout: float
    retries: int  # short in-task retries; longer waits go back to Celery
    backoff_cap: float
    max_inline_wait: float


def backoff(attempt: int, cap: float, base: float = 0.25) -> float:
    """Full-jitter exponential backoff: uniform(0, min(cap, base * 2**attempt))."""
    return random.uniform(0, min(cap, base * (2 ** attempt)))


class HttpEdge:
    """Sends provider requests under the cluster-wide limits, with short jittered retries."""

    def __init__(self, policy: Policy, limiter: RateLimiter | None) -> None:
        self.policy = policy
        self.limiter = limiter

    def _wait_for_limits(self, limits: list[Limit], cooldowns: list[str]) -> None:
        if self.limiter is None:
            return
        deadline = time.monotonic() + self.policy.max_inline_wait
        while True:
            wait = self.limiter.try_acquire(limits, cooldowns)
            if wait <= 0:
                return
            metrics.rate_limit_wait(self.limiter, limits, cooldowns)
            if time.monotonic() + wait > deadline:
                raise RateLimited(",".join(cooldowns or [lim.key for lim in limits]), wait)
            time.sleep(wait)

    @contextmanager
    def _slot(self, key: str | None, size: int) -> Iterator[None]:
        if self.limiter is None or key is None:
            yield
            return
        deadline = time.monotonic() + self.policy.max_inline_wait
        while True:
            token, wait = self.limiter.acquire_slot(key, size, lease=self.policy.read_timeout + 5)
            if token is not None:
                break
            metrics.slot_wait(key)
            if time.monotonic() + wait > deadline:
                raise RateLimited(key, max(wait, 0.5))
            time.sleep(wait)
        try:
            yield
        finally:
            self.limiter.release_slot(key, token)

    def send(self, method: str, url: str, *, classify: Classifier, limits: list[Limit],
             cooldowns: list[str], slot: tuple[str, int] | None = None, verbatim: bool = False,
             **kwargs: Any) -> requests.Response:
        """Send one logical request; transient failures are retried a few times within the task.

        With ``verbatim`` the URL goes on the wire exactly as given (stored delta links, provider rule 12):
        requests would otherwise re-quote it.
        """

        def attempt() -> requests.Response:
            self._wait_for_limits(limits, cooldowns)
            with self._slot(*(slot or (None, 0))):
                stats = _stats.get()
                if stats is not None:
                    stats.add()
                try:
                    resp = metrics.timed_send(_send, method, url, verbatim, self.policy, kwargs)
                except _UNANSWERED as exc:
                    raise unanswered(exc, url) from None
            error = classify(resp)
            if error is None:
                return resp
            if isinstance(error, Throttled) and self.limiter is not None and cooldowns:
                # Every worker honours the provider's wait for this account.
                self.limiter.cool_down(cooldowns[-1], error.retry_after or backoff(2, self.policy.backoff_cap))
            raise error

        def short_enough(exc: BaseException) -> bool:
            if not isinstance(exc, (Transient, Throttled)):
                return False
            wait = exc.retry_after
            return wait is None or wait <= self.policy.max_inline_wait

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            hinted = getattr(exc, "retry_after", None) or 0.0
            return max(hinted, backoff(state.attempt_number, self.policy.backoff_cap))

        retrying = Retrying(stop=stop_after_attempt(self.policy.retries + 1),
                            retry=retry_if_exception(short_enough), wait=wait, reraise=True)
        return retrying(attempt)


# Everything sending a request can raise. requests wraps most of it, but its own messages quote
# header values (InvalidHeader shows the Authorization header, bearer token included) and full URLs
# (with query cursors), and a few urllib3/http.client/socket errors escape it unwrapped.
_UNANSWERED = (requests.RequestException, urllib3.exceptions.HTTPError, http.client.HTTPException, OSError,
               ValueError)
_UNSENDABLE: tuple[tuple[type[BaseException], str], ...] = (
    (requests.exceptions.InvalidHeader, "a header value holds a line break, a leading space or another forbidden "
                                        "character (a damaged stored token?)"),
    (UnicodeError, "a header value is not Latin-1 text (a damaged stored token?)"),
    (requests.exceptions.InvalidJSONError, "the body cannot be encoded as JSON"),
    (requests.exceptions.MissingSchema, "the URL is malformed"),
    (requests.exceptions.InvalidSchema, "the URL is malformed"),
    (requests.exceptions.InvalidURL, "the URL is malformed"),
    (requests.exceptions.URLRequired, "the URL is malformed"),
    (ValueError, "the request is malformed"),
)


def unanswered(exc: BaseException, url: str) -> ProviderError:
    """A request that got no HTTP answer, as an error of the tree with a safe description.

    Only the exception's class and the host are kept, never its message: a request that cannot be
    sent is Permanent (sending it again fails the same way), any other failure Transient.
    """
    kind = type(exc).__name__
    try:
        host = urlsplit(url).hostname or "?"
    except ValueError:
        host = "?"
    if isinstance(exc, requests.Timeout):
        return Transient(f"timeout: {kind} ({host})")
    if isinstance(exc, requests.ConnectionError):
        return Transient(f"connection error: {kind} ({host})")
    for cls, reason in _UNSENDABLE:
        if isinstance(exc, cls):
            return Permanent(f"request to {host} not sent: {kind}: {reason}")
    return Transient(f"request to {host} failed: {kind}")


def _send(method: str, url: str, verbatim: bool, policy: Policy, kwargs: dict[str, Any]) -> requests.Response:
    timeout = (policy.connect_timeout, policy.read_timeout)
    s = session()
    if not verbatim:
        return s.request(method, url, timeout=timeout, allow_redirects=False, **kwargs)
    prepared = s.prepare_request(requests.Request(method, url, **kwargs))
    prepared.url = url
    return s.send(prepared, timeout=timeout, allow_redirects=False)


def json_body(resp: requests.Response) -> Any:
    """The response body as JSON; malformed JSON from a provider is a transient fault."""
    try:
        try:
            return resp.json()
        except RecursionError:  # one item nested hundreds of levels deep must not fail the page
            return loads_bounded(resp.text)
    except ValueError:
        raise Transient("malformed JSON in provider response", status=resp.status_code) from None

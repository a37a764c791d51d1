"""Waitress, hardened for the open internet: strict request framing, read deadlines and a connection cap.

Why waitress: its single I/O thread reads each request whole (headers and body, within the limits
below) before a worker thread sees it, so a slow or idle client costs a socket and a small buffer,
never a thread. Servers that hand the socket to a thread first (gunicorn's gthread, the stdlib's
ThreadingHTTPServer) give every slow-loris client a thread; BENCHMARKS.md has both measured.

On top of waitress's own checks (a non-numeric, negative or duplicated Content-Length is a 400; a
declared length over the limit is a 413 before any of the body is read; the header block is capped
in bytes) this module adds what a public endpoint needs and waitress leaves out:

- a chunked body is refused with 411 before any of it is read (providers always send a length);
- the number of header lines is capped (431);
- deadlines per connection: the request head must arrive within ``header_timeout`` of the
  connection (or of its first byte on a kept-alive one), the body within ``body_timeout`` of the
  head, and an idle kept-alive connection is closed after ``idle_timeout``; waitress itself only
  closes connections that are silent, so a client dripping one byte a second would stay forever;
- at most ``max_connections`` at once: one more is answered 503 and closed at once, instead of
  waiting unseen in the listen backlog.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher
from waitress.utilities import Error, RequestHeaderFieldsTooLarge

log = logging.getLogger("autosync.webhooks")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
        b"Retry-After: 5\r\nConnection: close\r\n\r\nbusy\n")


@dataclass(frozen=True)
class Limits:
    """What one client may cost the receiver."""

    max_body: int = 1 << 20  # Graph batches are a few KB; 1 MiB leaves room for large ones
    max_header_bytes: int = 16 << 10
    max_header_lines: int = 64
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    idle_timeout: int = 30
    max_connections: int = 4000
    threads: int = 8


class LengthRequired(Error):
    """411: the receiver reads only bodies of a declared length."""

    code = 411
    reason = "Length Required"


class StrictParser(HTTPRequestParser):  # type: ignore[misc]
    """Waitress's parser, also refusing chunked bodies and too many header lines."""

    chunked: bool

    def parse_header(self, header_plus: bytes) -> None:
        """Parse the request head; refuse it early where the limits say so."""
        if header_plus.count(b"\n") > self.adj.autosync_limits.max_header_lines:
            super().parse_header(b"GET / HTTP/1.0\r\n")  # what waitress does for an oversized head
            self.error = RequestHeaderFieldsTooLarge("too many header lines")
            return
        super().parse_header(header_plus)
        if self.chunked:
            # Nothing of the body has been read yet: answer now and close, instead of buffering it.
            self.chunked, self.body_rcv = False, None
            self.error = LengthRequired("a chunked body is not accepted; send Content-Length")


class GuardedChannel(HTTPChannel):  # type: ignore[misc]
    """One connection, with the deadlines its client must meet."""

    parser_class = StrictParser

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.head_since: float | None = self.creation_time  # a new connection must send its head in time
        self.body_since: float | None = None

    def received(self, data: bytes) -> bool:
        """Feed bytes to the parser and track when the current request's head and body started."""
        done = bool(super().received(data))
        partial = self.request
        if partial is None:
            self.head_since = self.body_since = None
        else:
            now = time.time()
            if self.head_since is None:
                self.head_since = now
            if partial.headers_finished and self.body_since is None:
                self.body_since = now
        return done

    def overdue(self, now: float, limits: Limits) -> str | None:
        """Why this connection should be closed now, if it should."""
        if self.requests:
            return None  # a response is being made: our time, not the client's
        partial = self.request
        if partial is not None and partial.headers_finished:
            if self.body_since is not None and now - self.body_since > limits.body_timeout:
                return "body"
        elif self.head_since is not None:
            if now - self.head_since > limits.header_timeout:
                return "head"
        elif now - self.last_activity > limits.idle_timeout:
            return "idle"
        return None


class GuardedServer(TcpWSGIServer):  # type: ignore[misc]
    """The listening socket: enforces the connection cap and the deadlines."""

    channel_class = GuardedChannel
    next_channel_cleanup: float

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.limits: Limits = self.adj.autosync_limits
        self.refused = 0
        self.timed_out = 0
        self._last_refusal_log = 0.0

    def readable(self) -> bool:
        """Run the deadline checks once a second; always accept (the cap is applied per connection)."""
        now = time.time()
        if now >= self.next_channel_cleanup:
            self.next_channel_cleanup = now + self.adj.cleanup_interval
            self.maintenance(now)
        return bool(self.accepting)

    def handle_accept(self) -> None:
        """Accept what is waiting (up to 64 at a time); over the cap, answer 503 and close at once.

        Waitress accepts one connection per loop pass; under a burst of thousands that leaves a
        real notification waiting behind them in the listen backlog for seconds.
        """
        for _ in range(64):
            try:
                accepted = self.accept()
            except OSError:
                return
            if accepted is None:
                return
            conn, addr = accepted
            if len(self.active_channels) >= self.limits.max_connections:
                self._refuse(conn)
                continue
            try:
                self.set_socket_options(conn)
            except OSError:
                conn.close()
                continue
            self.channel_class(self, conn, self.fix_addr(addr), self.adj, map=self._map)

    def _refuse(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            conn.setblocking(False)
            conn.send(BUSY)
            conn.shutdown(socket.SHUT_RDWR)
        conn.close()
        self.refused += 1
        if time.monotonic() - self._last_refusal_log > 10:
            self._last_refusal_log = time.monotonic()
            log.warning("connection limit reached: new connections are refused",
                        extra={"limit": self.limits.max_connections, "refused": self.refused})

    def maintenance(self, now: float) -> None:
        """Close connections whose client missed a deadline."""
        for channel in list(self.active_channels.values()):
            if not channel.will_close and channel.overdue(now, self.limits) is not None:
                channel.will_close = True
                self.timed_out += 1


class OncePer(logging.Filter):
    """Lets one record through per ``seconds``: waitress warns about its task queue on every request
    that has to wait, which under a flood would be a log line per forged notification."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self._last = float("-inf")

    def filter(self, record: logging.LogRecord) -> bool:
        """True at most once per period."""
        now = time.monotonic()
        if now - self._last < self.seconds:
            return False
        self._last = now
        return True


def raise_descriptor_limit(wanted: int) -> None:
    """Let the process hold ``wanted`` open files (sockets) if the hard limit allows; warn otherwise."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < wanted:
            log.warning("the open-file limit is below the connection limit: raise `ulimit -n`",
                        extra={"open_files": target, "wanted": wanted})


class HardenedServer:
    """A WSGI app served on host:port under ``limits``, until ``stop``."""

    def __init__(self, app: WsgiApp, host: str, port: int, limits: Limits) -> None:
        raise_descriptor_limit(limits.max_connections + 256)  # plus the database, broker and log files
        queue_log = logging.getLogger("waitress.queue")
        if not any(isinstance(f, OncePer) for f in queue_log.filters):
            queue_log.addFilter(OncePer(10.0))
        adj = Adjustments(
            host=host, port=port, threads=limits.threads, ident="autosync",
            max_request_body_size=limits.max_body + 1,  # waitress refuses a length >= this
            max_request_header_size=limits.max_header_bytes,
            # A body over 64 KiB waits in a temporary file, not in memory, until it is complete.
            inbuf_overflow=64 << 10,
            channel_timeout=limits.idle_timeout, cleanup_interval=1,
            connection_limit=limits.max_connections + 64,  # ours applies first; see handle_accept
            backlog=1024, asyncore_use_poll=True,  # select() cannot watch more than 1,024 sockets
            expose_tracebacks=False, log_socket_errors=False,
        )
        adj.autosync_limits = limits
        self.map: dict[int, Any] = {}
        self.dispatcher = ThreadedTaskDispatcher()
        self.dispatcher.set_thread_count(limits.threads)
        self.server = GuardedServer(app, map=self.map, adj=adj, dispatcher=self.dispatcher)
        self._stopping = threading.Event()

    @property
    def address(self) -> tuple[str, int]:
        """The bound host and port."""
        return str(self.server.effective_host), int(self.server.effective_port)

    def run(self) -> None:
        """Serve in the calling thread until ``stop``."""
        while not self._stopping.is_set():
            wasyncore.loop(timeout=1.0, use_poll=True, map=self.map, count=1)
        for channel in list(self.map.values()):
            with contextlib.suppress(OSError):
                channel.close()
        self.map.clear()
        self.dispatcher.shutdown(cancel_pending=True, timeout=5)

    def stop(self) -> None:
        """Make ``run`` return (from any thread): its loop wakes through waitress's trigger."""
        self._stopping.set()
        with contextlib.suppress(OSError, AttributeError):
            self.server.pull_trigger()

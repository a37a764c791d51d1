"""The emulator's HTTP plumbing: threading HTTP/1.1 server, keep-alive, TCP_NODELAY, connection resets."""

from __future__ import annotations

import contextlib
import socket
import struct
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from autosync.emulator.core import Response

if TYPE_CHECKING:
    from autosync.emulator.server import Emulator

RESET = object()  # dispatch outcome: drop the connection without answering


class EmulatorHTTPServer(ThreadingHTTPServer):
    """Threading server whose handlers reach the Emulator."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    emulator: Emulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up before its answer was written (a killed worker, a timed-out request)
        is not an error of the emulator's: only other failures get socketserver's traceback."""
        if isinstance(sys.exc_info()[1], ConnectionError):  # BrokenPipeError, ConnectionResetError, ...
            return
        super().handle_error(request, client_address)


class EmulatorHandler(BaseHTTPRequestHandler):
    """Parses a request, lets the Emulator dispatch it, writes the answer (or resets)."""

    protocol_version = "HTTP/1.1"
    server: EmulatorHTTPServer

    def setup(self) -> None:
        super().setup()
        # Without TCP_NODELAY every keep-alive response stalls ~40 ms (Nagle + delayed ACK).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request log is the record."""

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        host, port = self.server.server_address[:2]
        outcome = self.server.emulator.dispatch(
            self.command,
            split.path,
            split.query,
            self.headers,  # type: ignore[arg-type]
            body,
            f"http://{host!s}:{port}",
        )
        if outcome is RESET or not isinstance(outcome, Response):
            self._reset()
            return
        self._write(outcome)

    def _write(self, response: Response) -> None:
        payload = b"" if response.status in (204, 304) else response.encode()
        self.send_response(response.status)
        headers = dict(response.headers)
        if payload and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json; charset=UTF-8"
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    def _reset(self) -> None:
        """Abort the connection with a TCP RST and no response."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def finish(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            super().finish()

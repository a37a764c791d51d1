"""The emulator's HTTP server: routing, bearer auth, latency, faults, quotas and the request log."""

from __future__ import annotations

import gc
import json
import re
import threading
import time
from collections.abc import Mapping
from typing import Any

from autosync.emulator import google, watch_routes
from autosync.emulator.admin import handle_admin
from autosync.emulator.core import Account, Request, Response
from autosync.emulator.faults import FaultBook, QuotaBook, fault_response, graph_error
from autosync.emulator.google_errors import auth_error
from autosync.emulator.google_state import GoogleState
from autosync.emulator.httpserver import RESET, EmulatorHandler, EmulatorHTTPServer
from autosync.emulator.latency import Latency, LatencyBook
from autosync.emulator.oauth import OAuthState
from autosync.emulator.requestlog import RequestLog
from autosync.emulator.seed import dump_state, load_seed
from autosync.emulator.watch import PushHub

_MS_TOKEN_RE = re.compile(r"^/microsoft/[^/]+/oauth2/v2\.0/token/?$")
_GRAPH_WORDS = {
    "me",
    "users",
    "calendars",
    "calendar",
    "events",
    "calendarView",
    "delta",
    "instances",
    "subscriptions",
    "attachments",
    "accept",
    "decline",
    "tentativelyAccept",
    "cancel",
    "reauthorize",
}


def _new_graph() -> Any:
    """A GraphState when the Graph module is present, else None (Graph routes then answer 404)."""
    try:
        from autosync.emulator.graph import GraphState
    except ImportError:
        return None
    return GraphState()


def _settle_heap() -> None:
    """Take what is stored now out of the cyclic garbage collector's way.

    A seeded calendar is hundreds of thousands of long-lived dicts and lists. Every full collection
    walks all of them, and listing pages allocates enough to trigger one every few pages: on a
    50,000-event calendar that was a third of the emulator's time on a full listing. ``gc.freeze``
    moves the objects alive now to a generation that is never scanned (they are still freed by
    reference counting; whatever they leave in cycles is collected after the next seed unfreezes).
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class Emulator:
    """Google Calendar + Microsoft Graph emulator; start() serves it on a background thread."""

    def __init__(
        self,
        google_client: tuple[str, str] = ("google-client-id", "google-secret"),
        outlook_client: tuple[str, str] = ("outlook-client-id", "outlook-secret"),
        access_token_ttl: int = 3600,
        seed: dict[str, Any] | None = None,
        latency: Latency | None = None,
        oauth_latency: Latency | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.clients = {"google": tuple(google_client), "outlook": tuple(outlook_client)}
        self.access_token_ttl = access_token_ttl
        self.faults = FaultBook()
        self.quotas = QuotaBook()
        # How long provider answers take; `reset` goes back to what the emulator was started with.
        self.latency = LatencyBook(latency, oauth_latency)
        self.log = RequestLog()
        self.push = PushHub()
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.reset()
        if seed:
            self.load_seed(seed)

    # --- state --------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every account, calendar, event, fault, quota, logged request, channel and subscription."""
        with self.lock:
            self.oauth = OAuthState({k: (v[0], v[1]) for k, v in self.clients.items()}, self.access_token_ttl)
            self.google = GoogleState()
            self.google.on_change = self.push.google_changed
            self.graph = _new_graph()
            if self.graph is not None:
                self.graph.listen(self.push.graph_changed)
            self.push.reset()
            self.outlook_calendars: dict[str, list[tuple[str, str]]] = {}
            self.faults.clear()
            self.quotas.reset()
            self.latency.reset()
            self.log.clear()

    def create_account(
        self,
        provider: str,
        email: str,
        account_id: str | None = None,
        refresh_token: str | None = None,
        time_zone: str = "UTC",
        with_calendar: bool = True,
    ) -> tuple[str, str, str | None]:
        """Create an account (+ its primary calendar); returns (account_id, refresh_token, calendar_id)."""
        with self.lock:
            account, token = self.oauth.create_account(provider, email, account_id, refresh_token)
            cal_id = self.create_calendar(account.id, None, None, time_zone, primary=True) if with_calendar else None
            return account.id, token, cal_id

    def create_calendar(
        self,
        account_id: str,
        calendar_id: str | None,
        name: str | None,
        time_zone: str = "UTC",
        primary: bool = False,
    ) -> str:
        """Add a calendar to an account; returns its id."""
        with self.lock:
            account = self.oauth.accounts[account_id]
            if account.provider == "google":
                primary = primary or not any(c.owner.id == account_id for c in self.google.calendars.values())
                return self.google.add_calendar(account, calendar_id, name, time_zone, primary).id
            cal_name = name or "Calendar"
            if self.graph is not None:
                cal_id = self.graph.add_calendar(account, calendar_id, cal_name)
            else:
                cal_id = calendar_id or f"AAMkAD{len(self.outlook_calendars)}{account_id}"
            self.outlook_calendars.setdefault(account_id, []).append((cal_id, cal_name))
            return str(cal_id)

    def outlook_calendar_ids(self) -> set[str]:
        """Ids of every outlook calendar created through the core."""
        return {cal for cals in self.outlook_calendars.values() for cal, _ in cals}

    def load_seed(self, doc: dict[str, Any]) -> None:
        """Load a seed document (see generator.py for the format)."""
        with self.lock:
            load_seed(self, doc)
        _settle_heap()

    def dump(self) -> dict[str, Any]:
        """The whole state in the seed format (+ `graph`: the Graph module's own dump)."""
        with self.lock:
            return dump_state(self)

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Emulator:
        """Serve on a background thread (port 0 = a free port)."""
        server = EmulatorHTTPServer((host, port), EmulatorHandler)
        server.emulator = self
        self._server = server
        self.push.start()
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.push.stop()

    def __enter__(self) -> Emulator:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """`http://host:port` of the running server."""
        if self._server is None:
            raise RuntimeError("emulator not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def google_token_url(self) -> str:
        """Google token endpoint."""
        return self.base_url + "/google/token"

    @property
    def google_api_url(self) -> str:
        """Google Calendar v3 base URL."""
        return self.base_url + "/google/calendar/v3"

    @property
    def outlook_token_url(self) -> str:
        """Microsoft token endpoint (tenant `common`; any tenant segment works)."""
        return self.base_url + "/microsoft/common/oauth2/v2.0/token"

    @property
    def graph_api_url(self) -> str:
        """Microsoft Graph v1.0 base URL."""
        return self.base_url + "/graph/v1.0"

    @property
    def admin_url(self) -> str:
        """Admin API base URL."""
        return self.base_url + "/_admin"

    # --- dispatch -----------------------------------------------------------------------------

    def dispatch(
        self, method: str, path: str, raw_query: str, headers: Mapping[str, str], body: bytes, base_url: str
    ) -> Response | object:
        """Route one HTTP request; returns a Response or RESET."""
        if path == "/_admin" or path.startswith("/_admin/"):
            return handle_admin(self, Request(method, path[len("/_admin") :], raw_query, headers, body, base_url))
        if path.rstrip("/") == "/google/token" or _MS_TOKEN_RE.match(path):
            return self._token(method, path, raw_query, headers, body, base_url)
        for prefix, provider in (("/google/calendar/v3", "google"), ("/graph/v1.0", "outlook")):
            if path.startswith(prefix + "/"):
                req = Request(method, path[len(prefix) :], raw_query, headers, body, base_url)
                return self._api(provider, path, req)
        return Response(404, {"error": {"code": 404, "message": f"No route {path}"}})

    def _token(
        self, method: str, path: str, raw_query: str, headers: Mapping[str, str], body: bytes, base_url: str
    ) -> Response | object:
        received = time.time()
        provider = "google" if path.startswith("/google") else "outlook"
        endpoint = f"{provider}.token"
        account = self.oauth.account_for_form(body)
        delay = self.latency.delay(provider, endpoint, oauth=True)
        outcome = self._apply_fault(provider, account, None, endpoint)
        if outcome is None:
            if method != "POST":
                outcome = Response(405, {"error": "invalid_request", "error_description": "POST required"})
            else:
                outcome = self.oauth.token_endpoint(provider, body)
        _wait(delay)
        self._record(provider, endpoint, method, path, raw_query, outcome, account, None, headers, received)
        return outcome

    def _api(self, provider: str, full_path: str, req: Request) -> Response | object:
        received = time.time()
        account = self._authenticate(provider, req.headers)
        endpoint, calendar = self._describe(provider, req, account)
        if account is None:
            outcome: Response | object = _unauthorized(provider)
            _wait(self.latency.delay(provider, endpoint, oauth=False))
            self._record(
                provider, endpoint, req.method, full_path, req.raw_query, outcome, None, calendar, req.headers, received
            )
            return outcome
        req.account = account
        delay = self.latency.delay(provider, endpoint, oauth=False)
        slot = provider == "outlook"
        outcome = self.quotas.enter(account.id) if slot else None
        if outcome is not None:
            slot = False
        try:
            if outcome is None:
                outcome = self._apply_fault(provider, account.id, calendar, endpoint)
            if outcome is None:
                outcome = self.quotas.check(provider, account.id)
            if outcome is None:
                outcome = self._route(provider, req, endpoint)
            # The answer takes its latency inside the mailbox slot, as the request is in flight at
            # the service until it is answered (Graph counts such requests against MailboxConcurrency).
            _wait(delay)
        finally:
            if slot:
                self.quotas.leave(account.id)
        if isinstance(outcome, Response) and "X-Emulator-Endpoint" in outcome.headers:
            endpoint = outcome.headers.pop("X-Emulator-Endpoint")
        self._record(provider, endpoint, req.method, full_path, req.raw_query, outcome, account.id, calendar,
                     req.headers, received)
        return outcome

    def _route(self, provider: str, req: Request, endpoint: str) -> Response:
        if endpoint in watch_routes.ENDPOINTS:
            return watch_routes.handle(self, endpoint, req)  # without the lock: it may call the receiver
        with self.lock:
            if provider == "google":
                return google.handle(self.google, req)
            if self.graph is None:
                return Response(404, graph_error("ResourceNotFound", "Graph module not available."))
            response: Response = self.graph.handle(req)
            return response

    def _authenticate(self, provider: str, headers: Mapping[str, str]) -> Account | None:
        auth = headers.get("Authorization") or ""
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self.oauth.resolve(token.strip(), provider)

    def _describe(self, provider: str, req: Request, account: Account | None) -> tuple[str, str | None]:
        """(endpoint name, calendar id) of an API request, for faults and the log."""
        if provider == "google":
            name = google.route_name(req.method, req.path) or "google.unknown"
            cal = google.calendar_of(req.path)
            if cal == "primary" and account is not None:
                with self.lock:
                    cal = next(
                        (c.id for c in self.google.calendars.values() if c.owner.id == account.id and c.primary),
                        cal,
                    )
            return name, cal
        words = [seg for seg in req.path.split("/") if seg in _GRAPH_WORDS]
        name = "graph." + ".".join([req.method.lower(), *words])
        cal = None
        if self.graph is not None and account is not None:
            req.account = account
            with self.lock:
                if hasattr(self.graph, "endpoint_name"):
                    name = str(self.graph.endpoint_name(req))
                cal = self.graph.calendar_id_for(req)
        return name, cal

    def _apply_fault(
        self, provider: str, account: str | None, calendar: str | None, endpoint: str
    ) -> Response | object | None:
        fault = self.faults.take(provider, account, calendar, endpoint)
        if fault is None:
            return None
        if fault.kind == "reset":
            return RESET
        if fault.kind == "slow":
            time.sleep(fault.delay)
            return None
        return fault_response(fault, provider)

    def _record(
        self,
        provider: str,
        endpoint: str,
        method: str,
        path: str,
        raw_query: str,
        outcome: object,
        account: str | None,
        calendar: str | None,
        headers: Mapping[str, str],
        received: float | None = None,
    ) -> None:
        status = outcome.status if isinstance(outcome, Response) else None
        self.log.record(
            received=received,
            provider=provider,
            endpoint=endpoint,
            method=method,
            path=path,
            raw_query=raw_query,
            status=status,
            account=account,
            calendar=calendar,
            headers=headers,
            fault="reset" if outcome is RESET else None,
        )


def _wait(seconds: float) -> None:
    """The emulated latency: a sleep in the request's own thread, holding no lock."""
    if seconds > 0:
        time.sleep(seconds)


def _unauthorized(provider: str) -> Response:
    if provider == "google":
        return auth_error().response()
    body = graph_error("InvalidAuthenticationToken", "Access token has expired or is not yet valid.")
    return Response(
        401,
        body,
        {
            "WWW-Authenticate": 'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize"'
        },
    )


def serve(host: str, port: int, seed_path: str | None, latency: Latency | None = None,
          oauth_latency: Latency | None = None) -> None:
    """Run the emulator in the foreground until interrupted (the `autosync emulator` command)."""
    seed = None
    if seed_path:
        with open(seed_path, encoding="utf-8") as handle:
            seed = json.load(handle)
    emu = Emulator(seed=seed, latency=latency, oauth_latency=oauth_latency).start(host, port)
    print(f"autosync emulator on {emu.base_url}")
    for rule in emu.latency.list():
        print(f"  latency        {rule['ms']:g} ± {rule['jitter_ms']:g} ms ({rule['kind']} requests)")
    for label, url in (
        ("google token", emu.google_token_url),
        ("google api", emu.google_api_url),
        ("outlook token", emu.outlook_token_url),
        ("graph api", emu.graph_api_url),
        ("admin", emu.admin_url),
    ):
        print(f"  {label:<14} {url}")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()

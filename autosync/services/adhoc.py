"""Ad-hoc syncs: the app's AutoSync event and `autosync sync`, enqueued through the broker and awaited."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import kombu.exceptions
import psycopg
import redis
from psycopg_pool import PoolTimeout

from autosync.errors import ServiceUnavailable
from autosync.services import health
from autosync.store.pg import PgStore

log = logging.getLogger("autosync.adhoc")

# Requests live in PostgreSQL only (the app reads them there): the PostgreSQL store's own operations.
_store = PgStore()

# An AutoSync event is a few dozen bytes; anything near this is not one.
MAX_EVENT_BYTES = 64 * 1024
# How long handle() waits for PostgreSQL or the broker before answering ER007.
SERVICE_WAIT = 3.0
# Publishing: retry a refused connection briefly, then give up (the caller answers ER007).
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1.0}

OK = {"Status": "OK", "Statuscode": "SU001", "Message": "Data sync successfully"}


def error(code: str, message: str) -> dict[str, str]:
    """An error answer in the seed's response shape."""
    return {"Status": "ERROR", "Statuscode": code, "Message": message}


class InvalidRequest(ValueError):
    """The AutoSync event is malformed; carries the response to send back."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.response = error(code, message)


def _optional_int(args: dict[str, Any], name: str, allowed: set[int] | None = None) -> int | None:
    if name not in args or args[name] is None:
        return None
    value = args[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest("ER003", f"arguments.{name} must be an integer")
    if allowed is not None and value not in allowed:
        raise InvalidRequest("ER003", f"arguments.{name} must be one of {sorted(allowed)}")
    if allowed is None and not 0 < value < 2**63:
        raise InvalidRequest("ER003", f"arguments.{name} must be a positive 64-bit integer")
    return value


def parse_event(payload: Any) -> tuple[int, int | None, bool]:
    """Validate an AutoSync event; returns (userId, calendarType, silent).

    An app event always names ONE user: without ``userId`` (or with ``"arguments": null``) it is
    refused, never taken as "every user" (that is `autosync sync --all`, an operator's decision).
    """
    if isinstance(payload, (str, bytes, bytearray)):
        if len(payload) > MAX_EVENT_BYTES:
            raise InvalidRequest("ER001", f"request is larger than {MAX_EVENT_BYTES // 1024} KiB")
        try:
            payload = json.loads(payload)
        except RecursionError:
            raise InvalidRequest("ER001", "request is nested too deeply") from None
        except ValueError:
            raise InvalidRequest("ER001", "request is not valid JSON") from None
    if not isinstance(payload, dict):
        raise InvalidRequest("ER001", "request must be a JSON object")
    field = payload.get("field")
    if field != "AutoSync":
        shown = repr(field)[:40] if isinstance(field, str) or field is None else type(field).__name__
        raise InvalidRequest("ER002", f"unknown field {shown}; expected 'AutoSync'")
    args = payload.get("arguments")
    if args is None:
        raise InvalidRequest("ER003", "arguments with a userId are required")
    if not isinstance(args, dict):
        raise InvalidRequest("ER003", "arguments must be an object")
    unknown = set(args) - {"userId", "silentNotification", "calendarType"}
    if unknown:
        names = ", ".join(sorted(str(k)[:40] for k in unknown)[:5])
        raise InvalidRequest("ER003", f"unknown arguments: {names}")
    user_id = _optional_int(args, "userId")
    if user_id is None:
        raise InvalidRequest("ER003", "arguments.userId is required (an event syncs one user)")
    calendar_type = _optional_int(args, "calendarType", {1, 2})
    silent = _optional_int(args, "silentNotification", {0, 1})
    return user_id, calendar_type, bool(silent)


def enqueue(user_id: int | None, calendar_type: int | None, *, silent: bool = False, source: str = "adhoc",
            calendar_id: int | None = None, allow_mass_delete: bool = False, dry_run: bool = False,
            connect_timeout: float | None = None) -> int:
    """Record a request and enqueue its sync through the broker; returns the request id.

    ``user_id`` None syncs every user (`autosync sync --all`). ``dry_run``: the runs count what they
    would import, delete and push and write none of it (a calendar with a run in progress is left
    out). Raises ServiceUnavailable when
    PostgreSQL or the broker cannot be reached; a request whose message was not sent is closed with
    the reason, never left pending.
    """
    try:
        with _store.unit(timeout=connect_timeout) as tx:
            if user_id is not None and not tx.user_exists(user_id):
                raise InvalidRequest("ER004", f"unknown userId {user_id}")
            request_id = tx.create_request(user_id, calendar_type, silent=silent, source=source)
    except (psycopg.OperationalError, PoolTimeout) as exc:
        raise health.database_unavailable(exc) from None
    from autosync.tasks import sync_user

    try:
        sync_user.apply_async(kwargs={"user_id": user_id, "calendar_type": calendar_type, "request_id": request_id,
                                      "calendar_id": calendar_id, "allow_mass_delete": allow_mass_delete,
                                      **({"dry_run": True} if dry_run else {})},
                              queue="autosync", retry_policy=PUBLISH_RETRY)
    except (kombu.exceptions.OperationalError, redis.RedisError, OSError) as exc:
        unavailable = health.broker_unavailable(exc)
        _close_unsent(request_id, str(unavailable))
        raise unavailable from None
    return request_id


def _close_unsent(request_id: int, reason: str) -> None:
    """Close a request whose message never reached the broker (best effort: PostgreSQL may be gone too)."""
    try:
        with _store.unit(timeout=SERVICE_WAIT) as tx:
            tx.close_unsent_request(request_id, reason[:500])
    except (psycopg.Error, PoolTimeout):
        log.warning("could not close an unsent request", extra={"request": request_id})


def status(request_id: int) -> dict[str, Any]:
    """A request and its runs."""
    with _store.unit(timeout=SERVICE_WAIT) as tx:
        req, run_rows = tx.request_status(request_id)
    keys = ("runId", "calendarId", "reason", "step", "outcome", "error", "fullSync", "pagesFetched",
            "eventsUpserted", "eventsUnchanged", "eventsDeleted", "eventsSkipped", "pushCreated",
            "pushUpdated", "pushDeleted", "pushFailed", "conflicts", "providerRequests", "dryRun")
    return {"requestId": request_id, "done": req.get("finishedAt") is not None,
            "pending": req.get("pending"), "failed": req.get("failed"),
            "runs": [{k: r[k] for k in keys} for r in run_rows]}


def wait(request_id: int, timeout: float, progress: Callable[[dict[str, Any]], None] | None = None,
         poll: float = 0.1) -> dict[str, Any]:
    """Poll PostgreSQL until the request's runs are finished or the timeout passes."""
    deadline = time.monotonic() + timeout
    while True:
        summary = status(request_id)
        if progress:
            progress(summary)
        if summary["done"] or time.monotonic() >= deadline:
            summary["timedOut"] = not summary["done"]
            return summary
        time.sleep(poll)


def handle(payload: Any, timeout: float) -> dict[str, str]:
    """The AutoSync event: validate, enqueue, wait, answer in the seed's exact shape; never raises.

    ER001 malformed (not JSON, too large, too deep, not an object), ER002 wrong field, ER003 bad or
    missing arguments, ER004 unknown user, ER005 a sync failed, ER006 still running at the timeout,
    ER007 PostgreSQL or the broker unreachable (nothing is left pending).
    """
    try:
        user_id, calendar_type, silent = parse_event(payload)
        # Dead services are found before anything is recorded, each in SERVICE_WAIT seconds, with the
        # driver's reason (not a pool timeout); a broker that dies right after its check still gets
        # its request closed by enqueue().
        health.check_broker(timeout=SERVICE_WAIT)
        health.check_database(timeout=SERVICE_WAIT)
        request_id = enqueue(user_id, calendar_type, silent=silent, source="AutoSync", connect_timeout=SERVICE_WAIT)
    except InvalidRequest as exc:
        return exc.response
    except ServiceUnavailable as exc:
        return error("ER007", f"sync service unavailable: {exc}")
    except psycopg.Error as exc:  # e.g. a database that `autosync db upgrade` has not been run on
        return error("ER007", f"sync service unavailable: database error: {exc.diag.message_primary or exc}")
    try:
        summary = wait(request_id, timeout)
    except (psycopg.OperationalError, PoolTimeout) as exc:
        return error("ER007", f"sync service unavailable: {health.database_unavailable(exc)} "
                              f"(request {request_id} goes on)")
    except psycopg.Error as exc:
        return error("ER007", f"sync service unavailable: database error: {exc.diag.message_primary or exc} "
                              f"(request {request_id} goes on)")
    if summary["timedOut"]:
        return error("ER006", f"sync still running after {timeout:g}s (request {request_id})")
    if summary["failed"]:
        return error("ER005", f"{summary['failed']} calendar sync(s) failed (request {request_id})")
    return dict(OK)

"""Ad-hoc syncs: the app's AutoSync event and `autosync sync`, enqueued through the broker and awaited."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from autosync.store import runs as sql
from autosync.store.db import transaction

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
    if allowed is None and value <= 0:
        raise InvalidRequest("ER003", f"arguments.{name} must be a positive integer")
    return value


def parse_event(payload: Any) -> tuple[int | None, int | None, bool]:
    """Validate an AutoSync event; returns (userId, calendarType, silent)."""
    if isinstance(payload, (str, bytes)):
        try:
            payload = json.loads(payload)
        except ValueError:
            raise InvalidRequest("ER001", "request is not valid JSON") from None
    if not isinstance(payload, dict):
        raise InvalidRequest("ER001", "request must be a JSON object")
    if payload.get("field") != "AutoSync":
        raise InvalidRequest("ER002", f"unknown field {payload.get('field')!r}; expected 'AutoSync'")
    args = payload.get("arguments", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise InvalidRequest("ER003", "arguments must be an object")
    unknown = set(args) - {"userId", "silentNotification", "calendarType"}
    if unknown:
        raise InvalidRequest("ER003", f"unknown arguments: {', '.join(sorted(unknown))}")
    user_id = _optional_int(args, "userId")
    calendar_type = _optional_int(args, "calendarType", {1, 2})
    silent = _optional_int(args, "silentNotification", {0, 1})
    return user_id, calendar_type, bool(silent)


def enqueue(user_id: int | None, calendar_type: int | None, *, silent: bool = False, source: str = "adhoc",
            calendar_id: int | None = None, allow_mass_delete: bool = False) -> int:
    """Record a request and enqueue its sync through the broker; returns the request id."""
    with transaction() as conn:
        if user_id is not None and conn.execute(sql.USER_EXISTS, {"u": user_id}).fetchone() is None:
            raise InvalidRequest("ER004", f"unknown userId {user_id}")
        row = conn.execute(sql.CREATE_REQUEST, {"user_id": user_id, "calendar_type": calendar_type,
                                                "silent": silent, "source": source}).fetchone()
        assert row is not None
        request_id = int(row["requestId"])
    from autosync.tasks import sync_user

    sync_user.apply_async(kwargs={"user_id": user_id, "calendar_type": calendar_type, "request_id": request_id,
                                  "calendar_id": calendar_id, "allow_mass_delete": allow_mass_delete},
                          queue="autosync")
    return request_id


def status(request_id: int) -> dict[str, Any]:
    """A request and its runs."""
    with transaction() as conn:
        req = conn.execute(sql.REQUEST_STATUS, {"request_id": request_id}).fetchone() or {}
        run_rows = conn.execute(sql.RUNS_OF_REQUEST, {"request_id": request_id}).fetchall()
    keys = ("runId", "calendarId", "reason", "step", "outcome", "error", "fullSync", "pagesFetched",
            "eventsUpserted", "eventsUnchanged", "eventsDeleted", "eventsSkipped", "pushCreated",
            "pushUpdated", "pushDeleted", "pushFailed", "conflicts", "providerRequests")
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
    """The AutoSync event: validate, enqueue, wait, answer in the seed's exact shape."""
    try:
        user_id, calendar_type, silent = parse_event(payload)
        request_id = enqueue(user_id, calendar_type, silent=silent, source="AutoSync")
    except InvalidRequest as exc:
        return exc.response
    summary = wait(request_id, timeout)
    if summary["timedOut"]:
        return error("ER006", f"sync still running after {timeout:g}s (request {request_id})")
    if summary["failed"]:
        return error("ER005", f"{summary['failed']} calendar sync(s) failed (request {request_id})")
    return dict(OK)

"""OData error bodies of the Graph emulator (https://learn.microsoft.com/graph/errors)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

from autosync.emulator.core import Response


class GraphError(Exception):
    """A Graph error answer: HTTP status, OData ``code`` and message."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def not_found() -> GraphError:
    """The 404 Outlook answers for a missing or already deleted item."""
    return GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")


def bad_request(message: str, code: str = "BadRequest") -> GraphError:
    """A 400 with the given message."""
    return GraphError(400, code, message)


def error_response(err: GraphError, headers: Mapping[str, str]) -> Response:
    """The OData error body ``{"error":{code,message,innerError{date,request-id,client-request-id}}}``."""
    request_id = str(uuid.uuid4())
    client_id = headers.get("client-request-id") or request_id
    body = {
        "error": {
            "code": err.code,
            "message": err.message,
            "innerError": {
                "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": request_id,
                "client-request-id": client_id,
            },
        }
    }
    out_headers = {"request-id": request_id, "client-request-id": client_id, **err.headers}
    return Response(err.status, body, out_headers)

"""The adapters map every real error body in ../shared/provider-samples onto the one error tree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from autosync import errors
from autosync.providers.google import classify_api as google_classify
from autosync.providers.google import classify_token
from autosync.providers.http import parse_retry_after
from autosync.providers.outlook import classify_api as graph_classify

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "provider-samples"


def _response(status: int, body: object, headers: dict[str, str] | None = None) -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp._content = json.dumps(body).encode()
    resp.headers.update(headers or {})
    return resp


def _sample(name: str) -> dict:
    path = SAMPLES / name
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return json.loads(path.read_text())


@pytest.mark.parametrize(("sample", "kind", "retryable"), [
    # Refreshed once in place by the services; one that escapes them is not worth a retry.
    ("google/error-401-autherror-docs.json", errors.AuthInvalid, False),
    ("google/error-403-ratelimitexceeded-docs.json", errors.Throttled, True),
    ("google/error-403-userratelimitexceeded-docs.json", errors.Throttled, True),
    ("google/error-403-quotaexceeded-usage-limits-docs.json", errors.Throttled, True),
    ("google/error-429-ratelimitexceeded-docs.json", errors.Throttled, True),
    ("google/error-500-backenderror-docs.json", errors.Transient, True),
    ("google/error-410-fullsyncrequired-docs.json", errors.CursorInvalid, False),
    ("google/error-410-fullsyncrequired-real-capture-compass.json", errors.CursorInvalid, False),
    ("google/error-410-updatedmintoolongago-docs.json", errors.CursorInvalid, False),
    ("google/error-410-deleted-docs.json", errors.NotFound, False),
])
def test_google_error_samples_map_by_reason_not_status(sample: str, kind: type, retryable: bool) -> None:
    body = _sample(sample)
    error = google_classify(_response(body["error"]["code"], body))
    assert type(error) is kind and error.retryable is retryable


def test_google_403_without_a_rate_limit_reason_is_permanent() -> None:
    body = {"error": {"errors": [{"domain": "global", "reason": "forbidden", "message": "Forbidden"}],
                      "code": 403, "message": "Forbidden"}}
    assert type(google_classify(_response(403, body))) is errors.Permanent


def test_quota_exceeded_backs_off_at_least_a_minute() -> None:
    body = _sample("google/error-403-quotaexceeded-usage-limits-docs.json")
    error = google_classify(_response(403, body))
    assert isinstance(error, errors.Throttled) and (error.retry_after or 0) >= 60


def test_graph_429_sample_is_throttled_with_its_retry_after() -> None:
    body = _sample("graph/error-429-toomanyrequests-docs.json")
    error = graph_classify(_response(429, body, {"Retry-After": "17"}))
    assert isinstance(error, errors.Throttled) and error.retry_after == 17


@pytest.mark.parametrize(("status", "code", "kind"), [
    (410, "SyncStateNotFound", errors.CursorInvalid), (400, "syncStateNotFound", errors.CursorInvalid),
    (400, "resyncRequired", errors.CursorInvalid), (404, "ErrorItemNotFound", errors.NotFound),
    (401, "InvalidAuthenticationToken", errors.AuthInvalid), (412, "ErrorIrresolvableConflict", errors.Transient),
    (503, "serviceNotAvailable", errors.Transient), (400, "BadRequest", errors.Permanent),
])
def test_graph_errors_map_by_code(status: int, code: str, kind: type) -> None:
    assert type(graph_classify(_response(status, {"error": {"code": code, "message": "x"}}))) is kind


@pytest.mark.parametrize(("status", "body", "kind"), [
    (400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}, errors.AuthRevoked),
    (400, {"error": "invalid_grant", "error_description": "AADSTS700082: expired", "error_codes": [700082]},
     errors.AuthRevoked),
    (400, {"error": "interaction_required", "error_codes": [50076]}, errors.AuthRevoked),
    (401, {"error": "invalid_client", "error_description": "Unauthorized"}, errors.ClientMisconfigured),
    (400, {"error": "temporarily_unavailable", "error_codes": [90006]}, errors.Transient),
    (503, {"error": "server_error"}, errors.Transient),
])
def test_token_endpoint_errors(status: int, body: dict, kind: type) -> None:
    assert type(classify_token(_response(status, body))) is kind


def test_retry_after_in_seconds_fractions_and_http_dates() -> None:
    assert parse_retry_after("17") == 17 and parse_retry_after("0.5") == 0.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None

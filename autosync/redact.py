"""Secret-free text: the one scrubber for error texts stored in the database and for log lines."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from autosync.errors import ProviderError

MASK = "***"
MAX_ERROR = 2000

# Keys whose value is a credential wherever it appears: JSON, Python reprs, forms, query strings,
# headers. "token" alone stops at a word boundary, so cursors (syncToken, pageToken) stay readable.
_SECRET_KEYS = ("access_token", "refresh_token", "id_token", "client_secret", "client_assertion",
                "accessToken", "refreshToken", "clientState", "authorization", "password", "secret",
                "token", "x-goog-channel-token")
_SECRET_KEY_SET = {k.lower() for k in _SECRET_KEYS} | {"cookie", "set-cookie", "proxy-authorization"}

# A quote as it appears around a key or value: plain, backslash-escaped (JSON inside a JSON log
# line) or percent-encoded (JSON inside a URL or form body).
_QUOTE = r"(?:\\*[\"']|%22|%27)?"
_SEP = r"\s*(?::|=|%3[AaDd])\s*"
# A value runs until a delimiter; percent-escapes inside it are part of it (an encoded refresh
# token holds %2F), except those encoding a delimiter.
_VALUE = r"(?:%(?!(?:22|27|26|2[Cc]|7[Dd]|5[Dd]|20))[0-9A-Fa-f]{2}|[^\s\"'&,;}\]\\%<>])+"
_SCHEME = r"(?:(?:Bearer|Basic|Digest|Token)(?:\s+|%20|\+))?"

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(?:(?<![A-Za-z0-9_])|(?<=%22)|(?<=%27))((?:" + "|".join(re.escape(k) for k in _SECRET_KEYS) + r")"
                + _QUOTE + _SEP + _QUOTE + ")" + _SCHEME + _VALUE, re.I), r"\1" + MASK),
    (re.compile(r"(Bearer(?:\s+|%20|\+))[A-Za-z0-9\-._~+/%=]+", re.I), r"\1" + MASK),
    # Token shapes recognisable without a key: Google access tokens (ya29.), Google refresh tokens
    # (1//0…), and JWTs (Microsoft identity platform access and id tokens).
    (re.compile(r"\bya29\.[A-Za-z0-9_\-.]+"), MASK),
    (re.compile(r"(?<![A-Za-z0-9])1//[A-Za-z0-9_\-]{16,}"), MASK),
    (re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"), MASK),
    # Passwords in URLs (postgresql://user:password@host, redis://:password@host).
    (re.compile(r"(://[^:/@\s\"']*:)[^@/\s\"']+@"), r"\1" + MASK + "@"),
]


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """The text with tokens, credentials and the given secret values replaced by ***."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    for secret in secrets:
        if len(secret) < 4:
            continue
        text = text.replace(secret, MASK)
        escaped = json.dumps(secret)[1:-1]  # as it appears inside a JSON string
        if escaped != secret:
            text = text.replace(escaped, MASK)
    return text


def scrub_value(value: Any, secrets: Iterable[str] = (), _depth: int = 0) -> Any:
    """A copy of a (nested) value for logging: credential keys masked, strings scrubbed."""
    secrets = list(secrets)
    if _depth > 20:
        return MASK
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, Mapping):
        return {k: MASK if str(k).lower() in _SECRET_KEY_SET else scrub_value(v, secrets, _depth + 1)
                for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [scrub_value(v, secrets, _depth + 1) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return scrub(str(value), secrets)


def describe(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """A safe one-line description of an exception, for stored errors and log fields.

    Provider errors carry their class, status and provider code; anything else its class and its
    message, scrubbed. Never the exception's cause or traceback.
    """
    text = exc.describe() if isinstance(exc, ProviderError) else f"{type(exc).__name__}: {exc}"
    return scrub(" ".join(text.split()), secrets)[:MAX_ERROR]

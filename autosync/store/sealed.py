"""OAuth tokens at rest: sealed with Fernet (AES-128-CBC + HMAC-SHA256) under AUTOSYNC_TOKEN_KEYS.

A sealed token is stored in the same column as the plaintext one, as ``enc1:<key id>:<Fernet token>``:
the prefix says it is sealed and by which format, the key id (8 hex characters of the key's SHA-256,
which reveals nothing of the key) says by which key, so a rotation can find what is left to
re-seal with a plain SQL filter. The first key seals; every key opens. Plaintext tokens (written by
the app) still open as themselves, and are sealed the first time autosync touches their calendar.
Only this module and the store functions that read or write token columns see ciphertext: services
get plaintext, in memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken

from autosync.errors import TokenUnreadable

PREFIX = "enc1:"
KEYS_VARIABLE = "AUTOSYNC_TOKEN_KEYS"


def key_id(key: str) -> str:
    """A short, public name for a key."""
    return hashlib.sha256(key.encode("ascii")).hexdigest()[:8]


class Sealer:
    """Seals with the first key, opens with any; without keys it passes tokens through unchanged."""

    def __init__(self, keys: Sequence[str]) -> None:
        self._keys = {key_id(k): Fernet(k.encode("ascii")) for k in keys}
        self.current = key_id(keys[0]) if keys else None

    @property
    def enabled(self) -> bool:
        """Whether tokens are sealed on write."""
        return self.current is not None

    def seal(self, token: str | None) -> str | None:
        """What to store for a plaintext token (unchanged when no key is configured)."""
        if token is None or self.current is None:
            return token
        return f"{PREFIX}{self.current}:{self._keys[self.current].encrypt(token.encode('utf-8')).decode('ascii')}"

    def open(self, stored: str | None) -> str | None:
        """The plaintext of a stored token; raises TokenUnreadable (without any token text) when it cannot."""
        if stored is None or not stored.startswith(PREFIX):
            return stored
        kid, _, sealed = stored[len(PREFIX):].partition(":")
        fernet = self._keys.get(kid)
        if fernet is None:
            where = f"{KEYS_VARIABLE} is not set" if not self._keys else f"it is not in {KEYS_VARIABLE}"
            raise TokenUnreadable(f"stored OAuth token is sealed with key {kid[:8]!r}, but {where}: add that key "
                                  "back (keys may only be removed after `autosync tokens rotate`)")
        try:
            return fernet.decrypt(sealed.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise TokenUnreadable(f"stored OAuth token sealed with key {kid!r} does not decrypt (altered, or "
                                  "a different key with the same id)") from None

    def is_current(self, stored: str | None) -> bool:
        """Whether a stored token needs nothing: empty, or sealed with the first key (plaintext without keys)."""
        if stored is None or self.current is None:
            return True
        return stored.startswith(f"{PREFIX}{self.current}:")


@lru_cache(maxsize=1)
def sealer() -> Sealer:
    """The process-wide sealer, from settings."""
    from autosync.settings import get_settings

    return Sealer([k.reveal() for k in get_settings().token_keys])

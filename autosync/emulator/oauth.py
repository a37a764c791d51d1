"""OAuth token endpoints of the emulator: accounts, refresh tokens and expiring access tokens.

Google keeps its refresh token on refresh; Microsoft returns a new one each time and the emulator
invalidates the old one after use (https://developers.google.com/identity/protocols/oauth2/web-server#offline,
https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow#refresh-the-access-token).
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qs

from autosync.emulator.core import Account, Response

GOOGLE_SCOPE = "https://www.googleapis.com/auth/calendar.events https://www.googleapis.com/auth/calendar.readonly"
_MS_NON_RESOURCE_SCOPES = {"offline_access", "openid", "profile", "email"}


@dataclass
class RefreshGrant:
    """One refresh token and whether it can still be redeemed."""

    account_id: str
    state: str = "valid"  # valid | used | revoked


@dataclass
class AccessGrant:
    """One issued access token."""

    account_id: str
    provider: str
    expires_at: float


@dataclass
class OAuthState:
    """Accounts, OAuth clients and every token the emulator has issued."""

    clients: dict[str, tuple[str, str]]
    access_token_ttl: int = 3600
    accounts: dict[str, Account] = field(default_factory=dict)
    refresh: dict[str, RefreshGrant] = field(default_factory=dict)
    access: dict[str, AccessGrant] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def create_account(
        self, provider: str, email: str, account_id: str | None = None, refresh_token: str | None = None
    ) -> tuple[Account, str]:
        """Register an account and give it a valid refresh token."""
        if provider not in ("google", "outlook"):
            raise ValueError(f"unknown provider {provider!r}")
        with self.lock:
            acct_id = account_id or f"{provider}-{secrets.token_hex(6)}"
            if acct_id in self.accounts:
                raise ValueError(f"account {acct_id!r} exists")
            account = Account(id=acct_id, provider=provider, email=email, display_name=email.split("@")[0])
            self.accounts[acct_id] = account
            token = refresh_token or _new_refresh_token(provider)
            self.refresh[token] = RefreshGrant(acct_id)
            return account, token

    def new_refresh_token(self, account_id: str) -> str:
        """Mint a fresh valid refresh token for an account (a re-authorization)."""
        with self.lock:
            account = self.accounts[account_id]
            token = _new_refresh_token(account.provider)
            self.refresh[token] = RefreshGrant(account_id)
            return token

    def revoke(self, account_id: str) -> None:
        """Revoke every grant of an account: refresh tokens and access tokens stop working."""
        with self.lock:
            for grant in self.refresh.values():
                if grant.account_id == account_id:
                    grant.state = "revoked"
            self.expire_access_tokens(account_id)

    def expire_access_tokens(self, account_id: str) -> None:
        """Make every access token of an account expired."""
        with self.lock:
            for grant in self.access.values():
                if grant.account_id == account_id:
                    grant.expires_at = 0.0

    def resolve(self, token: str, provider: str) -> Account | None:
        """The account behind a live access token of that provider, else None."""
        with self.lock:
            grant = self.access.get(token)
            if grant is None or grant.provider != provider or grant.expires_at <= time.time():
                return None
            return self.accounts.get(grant.account_id)

    def account_for_form(self, body: bytes) -> str | None:
        """The account id a token request refers to (for fault matching), without consuming it."""
        token = _form(body).get("refresh_token")
        with self.lock:
            grant = self.refresh.get(token or "")
            return grant.account_id if grant else None

    def token_endpoint(self, provider: str, body: bytes) -> Response:
        """Answer a refresh_token grant for google or outlook."""
        form = _form(body)
        with self.lock:
            if provider == "google":
                return self._google(form)
            return self._microsoft(form)

    def refresh_tokens_of(self, account_id: str) -> list[str]:
        """Every still-valid refresh token of an account."""
        with self.lock:
            return [t for t, g in self.refresh.items() if g.account_id == account_id and g.state == "valid"]

    # --- Google -------------------------------------------------------------------------------

    def _google(self, form: dict[str, str]) -> Response:
        client_id, secret = self.clients["google"]
        if "client_id" not in form:
            return _google_error(400, "invalid_request", "Could not determine client ID from request.")
        if form["client_id"] != client_id:
            return _google_error(401, "invalid_client", "The OAuth client was not found.")
        if form.get("client_secret") != secret:
            return _google_error(401, "invalid_client", "Unauthorized")
        grant_type = form.get("grant_type", "")
        if grant_type != "refresh_token":
            return _google_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")
        if not form.get("refresh_token"):
            return _google_error(400, "invalid_request", "Missing required parameter: refresh_token")
        grant = self.refresh.get(form["refresh_token"])
        if grant is None or self.accounts[grant.account_id].provider != "google":
            return _google_error(400, "invalid_grant", "Bad Request")
        if grant.state != "valid":
            return _google_error(400, "invalid_grant", "Token has been expired or revoked.")
        access = self._issue("google", grant.account_id, "ya29.a0")
        scope = form.get("scope") or GOOGLE_SCOPE
        return Response(
            200,
            {
                "access_token": access,
                "expires_in": self.access_token_ttl,
                "scope": scope,
                "token_type": "Bearer",
            },
            {"Cache-Control": "no-cache, no-store, max-age=0, must-revalidate", "Pragma": "no-cache"},
        )

    # --- Microsoft ----------------------------------------------------------------------------

    def _microsoft(self, form: dict[str, str]) -> Response:
        client_id, secret = self.clients["outlook"]
        if not form.get("client_id"):
            return _ms_error(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_id'.",
            )
        if form["client_id"] != client_id:
            msg = (
                f"Application with identifier '{form['client_id']}' was not found in the directory 'Default Directory'."
            )
            return _ms_error(401, "invalid_client", 700016, msg)
        if form.get("client_secret") != secret:
            msg = (
                "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                f"secret value, not the client secret ID, for a secret added to app '{client_id}'."
            )
            return _ms_error(401, "invalid_client", 7000215, msg)
        if form.get("grant_type") != "refresh_token":
            grant_type = form.get("grant_type", "")
            msg = f"The provided value for the input 'grant_type' is not valid. Value: '{grant_type}'"
            return _ms_error(400, "unsupported_grant_type", 70003, msg)
        if not form.get("scope"):
            return _ms_error(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'scope'.",
            )
        if "," in form["scope"]:
            return _ms_error(
                400,
                "invalid_scope",
                70011,
                "The provided value for the input parameter 'scope' is not valid. "
                f"The scope {form['scope']} is not valid.",
            )
        if not form.get("refresh_token"):
            return _ms_error(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'refresh_token'.",
            )
        return self._ms_redeem(form)

    def _ms_redeem(self, form: dict[str, str]) -> Response:
        grant = self.refresh.get(form["refresh_token"])
        if grant is None or self.accounts[grant.account_id].provider != "outlook":
            return _ms_error(400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
        if grant.state == "used":
            msg = (
                "The provided authorization code or refresh token has expired due to inactivity. "
                "Send a new interactive authorization request for this user and resource."
            )
            return _ms_error(400, "invalid_grant", 70008, msg)
        if grant.state == "revoked":
            issued = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")
            msg = (
                f"The refresh token has expired due to inactivity. The token was issued on {issued} "
                "and was inactive for 90.00:00:00."
            )
            return _ms_error(400, "invalid_grant", 700082, msg)
        scopes = form["scope"].split()
        body: dict[str, object] = {
            "token_type": "Bearer",
            "scope": " ".join(s for s in scopes if s not in _MS_NON_RESOURCE_SCOPES),
            "expires_in": self.access_token_ttl,
            "ext_expires_in": self.access_token_ttl,
            "access_token": self._issue("outlook", grant.account_id, "eyJ0eXAiOiJKV1QiLCJub25jZSI6"),
        }
        if "offline_access" in scopes:
            grant.state = "used"
            new_token = _new_refresh_token("outlook")
            self.refresh[new_token] = RefreshGrant(grant.account_id)
            body["refresh_token"] = new_token
        return Response(200, body, {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})

    def _issue(self, provider: str, account_id: str, prefix: str) -> str:
        token = prefix + secrets.token_urlsafe(32)
        self.access[token] = AccessGrant(account_id, provider, time.time() + self.access_token_ttl)
        return token


def _form(body: bytes) -> dict[str, str]:
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}


def _new_refresh_token(provider: str) -> str:
    prefix = "1//0g" if provider == "google" else "1.AXkA"
    return prefix + secrets.token_urlsafe(40)


def _google_error(status: int, error: str, description: str) -> Response:
    return Response(status, {"error": error, "error_description": description})


def _ms_error(status: int, error: str, code: int, message: str) -> Response:
    """An Entra ID error body with AADSTS code, trace and correlation ids."""
    now = datetime.now(UTC)
    stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
    trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
    description = f"AADSTS{code}: {message}\r\nTrace ID: {trace}\r\nCorrelation ID: {corr}\r\nTimestamp: {stamp}"
    return Response(
        status,
        {
            "error": error,
            "error_description": description,
            "error_codes": [code],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": corr,
            "error_uri": f"https://login.microsoftonline.com/error?code={code}",
        },
    )

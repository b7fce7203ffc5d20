"""The dashboard's session: a signed cookie, opened by exchanging an API token on the login
form, never the token itself.

The cookie holds the tenant, the token's id, the session's CSRF secret and its expiry, as
base64url JSON followed by an HMAC-SHA-256 of it under a key only the server holds (derived
from the process's pepper by the composition root, so every serving process opens the
sessions of the others). A cookie that does not verify, has expired or is malformed is no
session. The token's secret is never in it: each request looks the token up by id again, so a
revoked token ends its sessions at once.

Cookies are ``HttpOnly`` (no script reads them), ``Secure`` (browsers send them over HTTPS,
and to ``localhost``), ``SameSite=Strict`` (no other site's page can make the browser send
them: with the CSRF field of every form, a forged POST fails twice)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from http.cookies import CookieError, SimpleCookie

SESSION_COOKIE = "sm_dash"
LOGIN_COOKIE = "sm_dash_login"  # the login form's CSRF secret, before there is a session
SESSION_TTL_S = 8 * 3600  # a working day; then the auditor logs in again
LOGIN_TTL_S = 600
_CSRF = re.compile(r"[A-Za-z0-9_-]{22,64}")
_MAX_COOKIE = 1024


@dataclass(frozen=True)
class Session:
    tenant_id: str
    token_id: str
    csrf: str
    expires_at: int  # Unix seconds


class SessionSeal:
    """Seals and opens session cookies with ``key`` (32 bytes or more)."""

    def __init__(self, key: bytes, now: Callable[[], datetime]) -> None:
        if len(key) < 32:
            raise ValueError("the session key needs at least 32 bytes")
        self._key = key
        self._now = now

    def _mac(self, payload: bytes) -> str:
        digest = hmac.new(self._key, b"sealmark/dashboard-session/v1\n" + payload, hashlib.sha256)
        return _b64(digest.digest())

    def new(self, tenant_id: str, token_id: str) -> Session:
        expires = int(self._now().timestamp()) + SESSION_TTL_S
        return Session(tenant_id, token_id, new_csrf(), expires)

    def seal(self, session: Session) -> str:
        body: dict[str, object] = {
            "t": session.tenant_id,
            "k": session.token_id,
            "c": session.csrf,
            "e": session.expires_at,
        }
        payload = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
        return _b64(payload) + "." + self._mac(payload)

    def open(self, value: str) -> Session | None:
        """The session a cookie value names, or None (forged, expired or malformed)."""
        if len(value) > _MAX_COOKIE or value.count(".") != 1:
            return None
        encoded, mac = value.split(".")
        try:
            payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except (ValueError, TypeError):
            return None
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        try:
            body = json.loads(payload)
            session = Session(str(body["t"]), str(body["k"]), str(body["c"]), int(body["e"]))
        except (ValueError, KeyError, TypeError):
            return None
        if session.expires_at <= self._now().timestamp():
            return None
        return session


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def new_csrf() -> str:
    return secrets.token_urlsafe(24)


def csrf_matches(presented: str, expected: str) -> bool:
    """Constant-time, and never for an empty or malformed value."""
    if not (_CSRF.fullmatch(presented) and _CSRF.fullmatch(expected)):
        return False
    return hmac.compare_digest(presented, expected)


def cookie_value(cookie_header: str, name: str) -> str:
    """The value of cookie ``name`` in a ``Cookie`` header, '' when absent or unreadable."""
    jar = SimpleCookie()
    try:
        jar.load(cookie_header[:8192])
    except CookieError:
        return ""
    morsel = jar.get(name)
    return morsel.value if morsel is not None else ""


def set_cookie(name: str, value: str, max_age: int, path: str = "/") -> str:
    """A ``Set-Cookie`` value: HttpOnly, Secure, SameSite=Strict; ``max_age`` 0 deletes it."""
    return f"{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict"

"""The consumer's session: one phone's browser is one session (what the clone rules count),
named by a random id in a cookie of ours. A cookie we did not set, or a hostile header, is no
session: a new one is made."""

from __future__ import annotations

import contextlib
import re
import secrets
from http.cookies import CookieError, SimpleCookie

SESSION_COOKIE = "sm_session"
SESSION_MAX_AGE_S = 365 * 24 * 3600  # one phone's browser is one session for a year
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{22,64}")


def session_of(cookie_header: str) -> tuple[str, bool]:
    """The session id from the ``Cookie`` header, or a new one (and True: set the cookie)."""
    cookie = SimpleCookie()
    with contextlib.suppress(CookieError):  # a hostile header is no cookie, not an error
        cookie.load(cookie_header)
    morsel = cookie.get(SESSION_COOKIE)
    if morsel is not None and _SESSION_ID.fullmatch(morsel.value):
        return morsel.value, False
    return secrets.token_urlsafe(24), True


def set_cookie(session: str, https: bool) -> str:
    """The ``Set-Cookie`` value that names ``session`` (Secure behind a trusted HTTPS proxy)."""
    cookie = f"{SESSION_COOKIE}={session}; Path=/; Max-Age={SESSION_MAX_AGE_S}; HttpOnly"
    return cookie + "; SameSite=Lax" + ("; Secure" if https else "")

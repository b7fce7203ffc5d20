"""The dashboard's routes: request in, response out, no sockets (the server loop is
:mod:`sealmark.server.http_server`, started by :mod:`audit.http.server`).

Routes::

    GET  /login            the sign-in form (sets the form's CSRF cookie)
    POST /login            token + csrf → the session cookie, 303 to /
    POST /logout           csrf → the session cookie cleared, 303 to /login
    GET  /                 the dashboard (?from=YYYY-MM-DD&to=…&days_ahead=…&limit=…)
    GET  /csv/{panel}      one panel's table as CSV, same parameters
    GET  /healthz          {"status": "ok"}

Without a valid session / redirects to /login and /csv/… answers 401. The handler is thin:
it checks the session, parses the query (:class:`audit.dashboard.DashboardQuery`), calls the
:class:`audit.dashboard.Dashboard` and renders; SealmarkError subclasses become statuses here
and only here. A token is only ever read from the POST body of /login: never from a URL, and
the access log has the path and the names of the query's parameters only."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import parse_qs, urlencode, urlsplit

import structlog
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from audit.dashboard import DAYS_AHEAD_MAX, LIMIT_MAX, DashboardQuery, Panel
from audit.http.sessions import (
    LOGIN_COOKIE,
    LOGIN_TTL_S,
    SESSION_COOKIE,
    SESSION_TTL_S,
    SessionSeal,
    cookie_value,
    csrf_matches,
    new_csrf,
    set_cookie,
)
from sealmark.errors import (
    InvalidArgument,
    PermissionDenied,
    SealmarkError,
    Unauthenticated,
    Unavailable,
)
from sealmark.server.http_server import Request, Response, page_headers
from sealmark.tenancy.model import Principal, Role

log = structlog.get_logger("sealmark.dashboard")

MAX_BODY_BYTES = 2048  # the login form: a token of 60 characters and a CSRF field
_NUMERIC = {
    "scans_per_day": {1, 2, 3, 4},
    "scans_per_region": {1, 2, 3, 4},
    "verdict_mix": {1, 2},
    "open_alerts": {2, 3},
    "clones": {1, 2, 3, 4},
    "nearing_expiry": {4},
    "recalls": {3, 4, 5},
}


class DashboardPort(Protocol):
    """What the pages need of :class:`audit.dashboard.Dashboard`."""

    def today(self) -> date: ...

    def panels(self, principal: Principal, query: DashboardQuery) -> list[Panel]: ...

    def panel(self, principal: Principal, query: DashboardQuery, name: str) -> Panel: ...


Authenticate = Callable[[str], Principal]  # a bearer token → its principal (Unauthenticated)


class DashboardApp:
    """Request in, response out. ``authenticate`` checks a presented token,
    ``token_principal`` looks a session's token up again by id (both raise
    Unauthenticated), ``seal`` signs the session cookies."""

    def __init__(
        self,
        dashboard: DashboardPort,
        *,
        authenticate: Authenticate,
        token_principal: Authenticate,
        seal: SessionSeal,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._dashboard = dashboard
        self._authenticate = authenticate
        self._token_principal = token_principal
        self._seal = seal
        self._now = now
        self._templates = Environment(
            loader=PackageLoader("audit", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._templates.filters["shown"] = _shown

    # ------------------------------------------------- what the server loop asks (HttpApp)

    def handle(self, request: Request) -> Response:
        """Answer one request; never raises (an unexpected error is logged, answered 500)."""
        nonce = secrets.token_urlsafe(16)
        try:
            response = self._route(request, nonce)
        except Exception:
            log.exception("dashboard.unexpected", method=request.method)
            response = self._error(nonce, HTTPStatus.INTERNAL_SERVER_ERROR)
        _secure(response, nonce)
        return response

    def refused(self, request: Request, status: int) -> Response:
        nonce = secrets.token_urlsafe(16)
        response = self._error(nonce, status)
        _secure(response, nonce)
        return response

    @staticmethod
    def body_limit(path: str) -> int:
        return MAX_BODY_BYTES

    # --------------------------------------------------------------------------- routing

    def _route(self, request: Request, nonce: str) -> Response:
        path = _path(request.target)
        method = "GET" if request.method == "HEAD" else request.method
        routes: dict[str, tuple[str, Callable[[Request, str], Response]]] = {
            "/": ("GET", self._home),
            "/login": ("GET POST", self._login),
            "/logout": ("POST", self._logout),
            "/healthz": ("GET", self._health),
        }
        if path in routes:
            allowed, handler = routes[path]
        elif path.startswith("/csv/"):
            allowed, handler = "GET", self._csv
        else:
            return self._error(nonce, HTTPStatus.NOT_FOUND)
        if method not in allowed.split():
            response = self._error(nonce, HTTPStatus.METHOD_NOT_ALLOWED)
            response.headers.append(("Allow", ", ".join(allowed.split())))
            return response
        if method == "POST" and not _same_origin(request):
            return self._error(nonce, HTTPStatus.FORBIDDEN, detail="cross-site request refused")
        return handler(request, nonce)

    def _principal(self, request: Request) -> tuple[Principal, str] | None:
        """The session's principal (its token looked up again) and CSRF secret, or None."""
        session = self._seal.open(cookie_value(request.headers.get("Cookie", ""), SESSION_COOKIE))
        if session is None:
            return None
        try:
            principal = self._token_principal(session.token_id)
        except Unauthenticated:
            return None
        if principal.tenant_id != session.tenant_id:
            return None
        return principal, session.csrf

    # ----------------------------------------------------------------------------- login

    def _login(self, request: Request, nonce: str) -> Response:
        if request.method != "POST":
            return self._login_page(nonce, HTTPStatus.OK, "")
        form = _form(request.body)
        expected = cookie_value(request.headers.get("Cookie", ""), LOGIN_COOKIE)
        if not csrf_matches(form.get("csrf", ""), expected):
            return self._login_page(nonce, HTTPStatus.FORBIDDEN, "The form expired. Sign in again.")
        try:
            principal = self._authenticate(form.get("token", "").strip())
            principal.require(Role.AUDITOR)
        except Unauthenticated:
            log.info("dashboard.login_refused", reason="token")
            return self._login_page(
                nonce, HTTPStatus.UNAUTHORIZED, "That token is not valid, or it was revoked."
            )
        except PermissionDenied:
            log.info("dashboard.login_refused", reason="role")
            return self._login_page(nonce, HTTPStatus.FORBIDDEN, "That token has no auditor role.")
        except Unavailable:
            return self._error(nonce, HTTPStatus.SERVICE_UNAVAILABLE)
        session = self._seal.new(principal.tenant_id, principal.token_id)
        log.info("dashboard.login", tenant=principal.tenant_id, token_id=principal.token_id)
        return Response(
            HTTPStatus.SEE_OTHER,
            headers=[
                ("Location", "/"),
                ("Cache-Control", "no-store"),
                ("Set-Cookie", set_cookie(SESSION_COOKIE, self._seal.seal(session), SESSION_TTL_S)),
                ("Set-Cookie", set_cookie(LOGIN_COOKIE, "", 0, "/login")),
            ],
        )

    def _login_page(self, nonce: str, status: int, message: str) -> Response:
        csrf = new_csrf()
        response = self._page(status, "login.html", nonce, {"csrf": csrf, "message": message})
        response.headers.append(
            ("Set-Cookie", set_cookie(LOGIN_COOKIE, csrf, LOGIN_TTL_S, "/login"))
        )
        return response

    def _logout(self, request: Request, nonce: str) -> Response:
        found = self._principal(request)
        if found is not None and not csrf_matches(_form(request.body).get("csrf", ""), found[1]):
            return self._error(nonce, HTTPStatus.FORBIDDEN, detail="the form expired")
        return Response(
            HTTPStatus.SEE_OTHER,
            headers=[
                ("Location", "/login"),
                ("Cache-Control", "no-store"),
                ("Set-Cookie", set_cookie(SESSION_COOKIE, "", 0)),
            ],
        )

    # ------------------------------------------------------------------------- the pages

    def _home(self, request: Request, nonce: str) -> Response:
        found = self._principal(request)
        if found is None:
            return Response(
                HTTPStatus.SEE_OTHER,
                headers=[("Location", "/login"), ("Cache-Control", "no-store")],
            )
        principal, csrf = found
        try:
            query = DashboardQuery.parse(_query(request.target), self._dashboard.today())
            panels = self._dashboard.panels(principal, query)
        except SealmarkError as exc:
            return self._failure(nonce, exc)
        facts = {
            "tenant": principal.tenant_id,
            "csrf": csrf,
            "query": query,
            "panels": panels,
            "params": urlencode(query.as_params()),
            "numeric": _NUMERIC,
            "days_ahead_max": DAYS_AHEAD_MAX,
            "limit_max": LIMIT_MAX,
            "generated": self._now().astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        }
        return self._page(HTTPStatus.OK, "dashboard.html", nonce, facts)

    def _csv(self, request: Request, nonce: str) -> Response:
        found = self._principal(request)
        if found is None:
            return self._error(nonce, HTTPStatus.UNAUTHORIZED, detail="sign in first")
        principal = found[0]
        name = _path(request.target).removeprefix("/csv/")
        try:
            query = DashboardQuery.parse(_query(request.target), self._dashboard.today())
            panel = self._dashboard.panel(principal, query, name)
        except SealmarkError as exc:
            return self._failure(nonce, exc)
        filename = f"sealmark-{principal.tenant_id}-{panel.name}-{query.first}-{query.last}.csv"
        return Response(
            HTTPStatus.OK,
            panel.csv(),
            "text/csv; charset=utf-8",
            [
                ("Content-Disposition", f'attachment; filename="{filename}"'),
                ("Cache-Control", "no-store"),
            ],
        )

    def _health(self, request: Request, nonce: str) -> Response:
        body = json.dumps({"status": "ok"}).encode()
        return Response(HTTPStatus.OK, body, "application/json", [("Cache-Control", "no-store")])

    # ------------------------------------------------------------------------- rendering

    def _failure(self, nonce: str, exc: SealmarkError) -> Response:
        if isinstance(exc, InvalidArgument):
            return self._error(nonce, HTTPStatus.BAD_REQUEST, exc.field, exc.message)
        if isinstance(exc, PermissionDenied):
            return self._error(
                nonce, HTTPStatus.FORBIDDEN, detail="this session has no auditor role"
            )
        if isinstance(exc, Unavailable):
            response = self._error(nonce, HTTPStatus.SERVICE_UNAVAILABLE)
            response.headers.append(("Retry-After", "30"))
            return response
        log.warning("dashboard.refused", error=type(exc).__name__)
        return self._error(nonce, HTTPStatus.INTERNAL_SERVER_ERROR)

    def _error(self, nonce: str, status: int, field: str = "", detail: str = "") -> Response:
        signed_out = status in (HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN)
        facts = {
            "status": int(status),
            "phrase": HTTPStatus(status).phrase,
            "field": field,
            "detail": detail,
            "back": "/login" if signed_out else "/",
            "back_label": "Sign in" if signed_out else "Back to the dashboard",
        }
        response = self._page(status, "error.html", nonce, facts)
        response.headers.append(("Cache-Control", "no-store"))
        return response

    def _page(self, status: int, name: str, nonce: str, facts: Mapping[str, Any]) -> Response:
        body = self._templates.get_template(name).render(nonce=nonce, **facts)
        response = Response(status, body.encode("utf-8"))
        response.headers.append(("Cache-Control", "no-store"))
        return response


def _path(target: str) -> str:
    if not target.startswith("/"):  # absolute form: GET http://host/path HTTP/1.1
        target = urlsplit(target).path or "/"
    return target.partition("?")[0] or "/"


def _query(target: str) -> dict[str, list[str]]:
    raw = target.partition("?")[2]
    try:
        return parse_qs(raw, keep_blank_values=True, max_num_fields=16, errors="strict")
    except ValueError as exc:  # too many fields, or escapes that are not UTF-8
        raise InvalidArgument("query", "at most 16 parameters, UTF-8") from exc


def _form(body: bytes) -> dict[str, str]:
    """A urlencoded form (first value of each field); malformed is empty, never an error
    that could echo it."""
    try:
        pairs = parse_qs(body.decode("utf-8"), max_num_fields=8, errors="strict")
    except (UnicodeDecodeError, ValueError):
        return {}
    return {k: v[0] for k, v in pairs.items() if v}


def _same_origin(request: Request) -> bool:
    """A POST from one of our own pages, as far as the browser says where it comes from:
    ``Sec-Fetch-Site`` (every current browser) must be ``same-origin`` (or ``none``: typed by
    the user); without it, an ``Origin`` must be this host. ``Origin: null`` is what our own
    forms send under ``Referrer-Policy: no-referrer``, so it decides nothing. SameSite=Strict
    cookies and the forms' CSRF fields are the other two locks."""
    site = request.headers.get("Sec-Fetch-Site", "").strip().lower()
    if site:
        return site in ("same-origin", "none")
    origin = request.headers.get("Origin", "").strip()
    if not origin or origin == "null":
        return True
    return urlsplit(origin).netloc.lower() == request.headers.get("Host", "").strip().lower()


def _shown(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _secure(response: Response, nonce: str) -> None:
    """The headers every answer carries: :func:`page_headers` with no script at all."""
    response.headers += page_headers(nonce, scripts=False)
    response.headers.append(("Cross-Origin-Opener-Policy", "same-origin"))

"""The Verifier's HTTP face: the consumer page behind every Digital Link URL, the public key
set, the GS1 resolver description and a health check.

Routes (all public, no credential; the use case rate-limits per client)::

    GET|POST /01/{gtin}[/22/…][/10/{lot}][/21/{serial}]?17=…&8030=…   the verdict page
             (Accept: application/json gives the verdict as JSON; POST field pin confirms
             the hidden PIN, fields lat/lon add the phone's location)
    GET /.well-known/gs1resolver    resolver description (GS1 Digital Link resolver standard)
    GET /keys?tenant=… | ?gtin=…    the brand's public key set (JSON)
    GET /healthz                    {"status": "ok"|"degraded", "redis": "up"|"down"}
    GET|POST /scan                  a photo of the label: upload form, then the verdict and
             the covert mark (POST multipart/form-data fields image and pin, or the image
             itself as image/png|jpeg|webp; Accept: application/json gives JSON)

The handler is thin: it parses the request, calls one :class:`VerifierPort` method and
renders the result; SealmarkError subclasses become HTTP statuses here and only here. A link
that is not a well-formed GS1 Digital Link of a serialised item is refused with 400 before the
use case sees it. Nothing from the request is echoed unescaped (Jinja2 autoescape), no error
shows a stack trace, and the pages work without JavaScript: the only script, a nonce-bound
one, offers the phone's location as an optional extra.
"""

from __future__ import annotations

import contextlib
import email.policy
import json
import re
import secrets
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from email.parser import BytesParser
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, urlsplit

import structlog
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from sealmark.clock import Clock, SystemClock
from sealmark.covert.reader import MAX_IMAGE_BYTES
from sealmark.errors import (
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from sealmark.gs1.code import GS1Code
from verifier import messages
from verifier.domain import ClientContext, Verdict, Verification

if TYPE_CHECKING:
    from verifier.images import ImageVerification

log = structlog.get_logger("sealmark.verify_http")

MAX_BODY_BYTES = 4096  # a PIN form needs a few dozen bytes
MAX_UPLOAD_BYTES = MAX_IMAGE_BYTES + 16 * 1024  # /scan: one image and a PIN, with their parts
SCAN_PATH = "/scan"
_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp"})
SESSION_COOKIE = "sm_session"
SESSION_MAX_AGE_S = 365 * 24 * 3600  # one phone's browser is one session for a year
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{22,64}")
_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}(?::[0-9]{1,5})?")
_REGION = re.compile(r"[A-Za-z]{2}(?:-[A-Za-z0-9]{1,3})?")
_QUERY_PARAM = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_PRIMARY_KEY_SEGMENTS = frozenset({"01", "00"})
_NO_FORM: tuple[str | None, float | None, float | None] = (None, None, None)


class VerifierPort(Protocol):
    """What the HTTP face needs of :class:`verifier.usecases.Verifier`."""

    def verify(
        self,
        payload: str,
        pin: str | None,
        context: ClientContext,
        *,
        parsed: GS1Code | InvalidArgument | None = None,
    ) -> Verification: ...

    def key_set(self, tenant_id: str | None, gtin: str | None) -> dict[str, Any]: ...

    def health(self) -> dict[str, Any]: ...


class ImagePort(Protocol):
    """What the /scan page needs of :class:`verifier.images.ImageVerifier`."""

    def verify_image(
        self, image: bytes, pin: str | None, context: ClientContext
    ) -> ImageVerification: ...


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # the request target as sent: origin form (/path?query) or absolute form
    headers: Mapping[str, str]  # lookups are case-insensitive (email.message.Message)
    body: bytes
    client: str  # the peer address


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)


# ------------------------------------------------------------------------------- the app


class VerifyApp:
    """Request in, response out, no sockets: the routes and their rendering."""

    def __init__(
        self,
        verifier: VerifierPort,
        *,
        fallback_host: str,
        clock: Clock | None = None,
        trust_proxy: bool = False,
        images: ImagePort | None = None,
    ) -> None:
        self._verifier = verifier
        self._images = images
        self._fallback_host = fallback_host
        self._clock = clock or SystemClock()
        self._trust_proxy = trust_proxy
        self._templates = Environment(
            loader=PackageLoader("verifier", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def handle(self, request: Request) -> Response:
        """Answer one request; never raises (an unexpected error is logged and becomes a
        plain 500 page)."""
        view = _View(request, self._trust_proxy)
        try:
            response = self._route(request, view)
        except Exception:
            log.exception("verify_http.unexpected", method=request.method, route=view.route)
            response = self.error(view, HTTPStatus.INTERNAL_SERVER_ERROR, "error_internal")
        _secure(response, view.nonce)
        return response

    def _route(self, request: Request, view: _View) -> Response:
        path, method = view.path, request.method
        routes: dict[str, tuple[tuple[str, ...], Callable[[Request, _View], Response]]] = {
            "/": (("GET", "HEAD"), self._home),
            "/healthz": (("GET", "HEAD"), self._health),
            "/.well-known/gs1resolver": (("GET", "HEAD", "OPTIONS"), self._resolver),
            "/keys": (("GET", "HEAD", "OPTIONS"), self._keys),
        }
        if self._images is not None:
            routes[SCAN_PATH] = (("GET", "HEAD", "POST"), self._scan)
        if path in routes:
            allowed, handler = routes[path]
            view.route = path
        elif _PRIMARY_KEY_SEGMENTS & set(path.split("/")):
            allowed, handler = ("GET", "HEAD", "POST", "OPTIONS"), self._verify
            view.route = "digital_link"
        else:
            return self.error(view, HTTPStatus.NOT_FOUND, "error_not_found")
        if method not in allowed:
            response = self.error(view, HTTPStatus.METHOD_NOT_ALLOWED, "error_method")
            response.headers.append(("Allow", ", ".join(allowed)))
            return response
        if method == "OPTIONS":
            return _preflight(allowed)
        return handler(request, view)

    # ---------------------------------------------------------------- the verification page

    def _verify(self, request: Request, view: _View) -> Response:
        payload = view.payload(self._fallback_host)
        try:  # parsed once: the use case takes this parse
            code = GS1Code.from_digital_link(payload, today=self._clock.now().date(), field="link")
        except InvalidArgument as exc:
            return self.error(view, HTTPStatus.BAD_REQUEST, "error_bad_link", exc.message)
        if request.method == "HEAD":  # a link checker's probe is not a consumer's scan
            return Response(HTTPStatus.OK, headers=[("Cache-Control", "no-store")])
        try:
            pin, latitude, longitude = _form(request) if request.method == "POST" else _NO_FORM
            session, new_session = view.session()
            context = ClientContext(
                session_id=session,
                latitude=latitude,
                longitude=longitude,
                region=view.region(),
                locale=view.locale,
                client=view.client(),
            )
            verification = self._verifier.verify(payload, pin, context, parsed=code)
        except InvalidArgument as exc:
            key = "error_bad_link" if exc.field in ("link", "payload") else "error_bad_input"
            return self.error(view, HTTPStatus.BAD_REQUEST, key, exc.message)
        except ResourceExhausted:
            response = self.error(view, HTTPStatus.TOO_MANY_REQUESTS, "error_rate")
            response.headers.append(("Retry-After", "60"))
            return response
        except NotFound:
            return self.error(view, HTTPStatus.NOT_FOUND, "error_not_found")
        except Unavailable:
            response = self.error(view, HTTPStatus.SERVICE_UNAVAILABLE, "error_unavailable")
            response.headers.append(("Retry-After", "30"))
            return response
        status = _status_of(verification)
        if view.wants_json:
            response = _json(status, verification_json(verification, view.locale))
        else:
            response = self._page(status, "verify.html", view, _page_facts(verification, view))
        response.headers += [
            ("Cache-Control", "no-store"),
            ("Vary", "Accept, Accept-Language, Cookie"),
        ]
        if new_session:
            response.headers.append(("Set-Cookie", _cookie(session, view.https)))
        return response

    # -------------------------------------------------------------- a photo of the label

    def _scan(self, request: Request, view: _View) -> Response:
        assert self._images is not None
        if request.method != "POST":
            response = self._page(HTTPStatus.OK, "scan.html", view, {"result": None})
            response.headers.append(("Cache-Control", "no-store"))
            return response
        try:
            image, pin = _upload(request)
            session, new_session = view.session()
            context = ClientContext(
                session_id=session, region=view.region(), locale=view.locale, client=view.client()
            )
            result = self._images.verify_image(image, pin, context)
        except InvalidArgument as exc:
            return self.error(view, HTTPStatus.BAD_REQUEST, "error_bad_input", exc.message)
        except ResourceExhausted:
            response = self.error(view, HTTPStatus.TOO_MANY_REQUESTS, "error_rate")
            response.headers.append(("Retry-After", "60"))
            return response
        except Unavailable:
            response = self.error(view, HTTPStatus.SERVICE_UNAVAILABLE, "error_unavailable")
            response.headers.append(("Retry-After", "30"))
            return response
        covert = result.covert
        mark = {
            "status": covert.status.value,
            "score": covert.score,
            "noise": covert.noise,
            "modules": covert.modules,
            "rule": covert.rule,
        }
        if view.wants_json:
            body = {
                "payload": result.payload,
                "verification": verification_json(result.verification, view.locale),
                "covert_mark": mark,
            }
            response = _json(HTTPStatus.OK, body)
        else:
            facts = _page_facts(result.verification, view)
            facts["show_pin_form"] = False  # the PIN goes with the photo, on the form below
            page = {"result": facts, "mark": mark, "mark_score": f"{covert.score:.2f}"}
            response = self._page(HTTPStatus.OK, "scan.html", view, page)
        response.headers += [("Cache-Control", "no-store"), ("Vary", "Accept, Accept-Language")]
        if new_session:
            response.headers.append(("Set-Cookie", _cookie(session, view.https)))
        return response

    # ------------------------------------------------------------------------ other routes

    def _home(self, request: Request, view: _View) -> Response:
        return self._page(HTTPStatus.OK, "home.html", view, {})

    def _health(self, request: Request, view: _View) -> Response:
        try:
            body = self._verifier.health()
        except Exception:  # whatever broke, the answer to "are you well" is no, not a 500
            log.warning("verify_http.health_failed", exc_info=True)
            return _json(HTTPStatus.SERVICE_UNAVAILABLE, {"status": "down"}, cache="no-store")
        return _json(HTTPStatus.OK, body, cache="no-store")

    def _resolver(self, request: Request, view: _View) -> Response:
        root = f"{view.scheme}://{view.host(self._fallback_host)}"
        description = {
            "name": "Sealmark verifier",
            "resolverRoot": root,
            "supportedLinkType": [
                {
                    "namespace": "http://gs1.org/voc/",
                    "prefix": "gs1:",
                    "profile": "https://gs1.org/voc/?show=linktypes",
                }
            ],
            "supportedPrimaryKeys": ["01"],
            "linkTypeDefaultCanBeLinkset": False,
            "linkTypeDefaultCanBeAll": False,
            "supportedContextValuesEnumerated": [],
            "supportedContextValuesExternal": [],
        }
        return _json(HTTPStatus.OK, description, cache="public, max-age=3600", cors=True)

    def _keys(self, request: Request, view: _View) -> Response:
        tenant, gtin = view.query.get("tenant") or None, view.query.get("gtin") or None
        try:
            for name, value in (("tenant", tenant), ("gtin", gtin)):
                if value is not None and not _QUERY_PARAM.fullmatch(value):
                    raise InvalidArgument(name, "want 1..64 of A-Z a-z 0-9 _ . -")
            if tenant is None and gtin is None:
                raise InvalidArgument("tenant", "give tenant= or gtin=")
            key_set = self._verifier.key_set(tenant, gtin)
        except InvalidArgument as exc:
            error = {"error": "invalid_argument", "field": exc.field, "message": exc.message}
            return _json(HTTPStatus.BAD_REQUEST, error, cors=True)
        except NotFound as exc:
            error = {"error": "not_found", "message": exc.message}
            return _json(HTTPStatus.NOT_FOUND, error, cors=True)
        except ResourceExhausted:
            error = {"error": "resource_exhausted", "message": "too many requests"}
            return _json(HTTPStatus.TOO_MANY_REQUESTS, error, cors=True)
        except Unavailable:
            error = {"error": "unavailable", "message": "try again later"}
            return _json(HTTPStatus.SERVICE_UNAVAILABLE, error, cors=True)
        return _json(HTTPStatus.OK, key_set, cache="public, max-age=300", cors=True)

    # ---------------------------------------------------------------------------- rendering

    def error(self, view: _View, status: int, key: str, detail: str = "") -> Response:
        """An error page (or JSON when asked) in the reader's language; ``detail`` is the
        field-naming message of an InvalidArgument, never an exception's text."""
        if view.wants_json:
            error = {"error": HTTPStatus(status).phrase.lower().replace(" ", "_")}
            if detail:
                error["message"] = detail
            response = _json(status, error, cache="no-store")
        else:
            facts = {"key": key, "status": int(status), "detail": detail}
            response = self._page(status, "error.html", view, facts)
            response.headers.append(("Cache-Control", "no-store"))
        return response

    def _page(self, status: int, name: str, view: _View, facts: Mapping[str, Any]) -> Response:
        body = self._templates.get_template(name).render(
            L=messages.labels(view.locale),
            locale=view.locale,
            other_locale=messages.ZH if view.locale == messages.EN else messages.EN,
            other_href=view.lang_href(),
            nonce=view.nonce,
            **facts,
        )
        return Response(status, body.encode("utf-8"))


def render_plain_error(status: int) -> bytes:
    """The page for errors found before a request is parsed (bad request line, oversized
    headers, unknown method): static text in both languages, nothing echoed."""
    phrase = HTTPStatus(status).phrase
    return (
        "<!doctype html><html><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{status} {phrase}</title></head><body>"
        f"<h1>{status} {phrase}</h1><p>请求无效。The request could not be understood.</p>"
        "</body></html>"
    ).encode()


# ------------------------------------------------------------------------ request helpers


class _View:
    """What one request says about itself: path, query, language, session, client."""

    def __init__(self, request: Request, trust_proxy: bool) -> None:
        self._request = request
        self._trust_proxy = trust_proxy
        self.route = "?"
        self.nonce = secrets.token_urlsafe(16)
        target = request.target
        if not target.startswith("/"):  # absolute form: GET http://host/01/… HTTP/1.1
            parts = urlsplit(target)
            target = parts.path + (f"?{parts.query}" if parts.query else "")
        self.path, _, self.raw_query = target.partition("?")
        self.path = self.path or "/"
        self.query = _query_dict(self.raw_query)
        forced = messages.locale_for_tag(self.query.get("lang", ""))
        self.locale = forced or messages.pick_locale(request.headers.get("Accept-Language", ""))
        self.wants_json = _wants_json(request.headers.get("Accept", ""))

    @property
    def https(self) -> bool:
        proto = self._request.headers.get("X-Forwarded-Proto", "")
        return self._trust_proxy and proto.strip().lower() == "https"

    @property
    def scheme(self) -> str:
        return "https" if self.https else "http"

    def host(self, fallback: str) -> str:
        """The Host header when it is a plain host[:port], else the server's own address."""
        host = self._request.headers.get("Host", "").strip()
        return host if _HOST.fullmatch(host) else fallback

    def payload(self, fallback_host: str) -> str:
        """The scanned link as the phone opened it, less our own ``lang`` parameter."""
        items = [i for i in self.raw_query.split("&") if i and i.partition("=")[0] != "lang"]
        query = "&".join(items)
        return f"{self.scheme}://{self.host(fallback_host)}{self.path}" + (
            f"?{query}" if query else ""
        )

    def lang_href(self) -> str:
        """A relative link to this page in the other language (query only, so it can never
        point off-site)."""
        other = messages.ZH if self.locale == messages.EN else messages.EN
        items = [i for i in self.raw_query.split("&") if i and i.partition("=")[0] != "lang"]
        return "?" + "&".join([*items, f"lang={other}"])

    def session(self) -> tuple[str, bool]:
        """The session id from the cookie, or a new one (and True: set the cookie)."""
        cookie = SimpleCookie()
        with contextlib.suppress(CookieError):  # a hostile header is no cookie, not an error
            cookie.load(self._request.headers.get("Cookie", ""))
        morsel = cookie.get(SESSION_COOKIE)
        if morsel is not None and _SESSION_ID.fullmatch(morsel.value):
            return morsel.value, False
        return secrets.token_urlsafe(24), True

    def client(self) -> str:
        if self._trust_proxy:
            hops = [h.strip() for h in self._request.headers.get("X-Forwarded-For", "").split(",")]
            if hops[-1]:
                return hops[-1][:64]  # the address our proxy saw; earlier hops are hearsay
        return self._request.client

    def region(self) -> str:
        """The client's region as an edge proxy geolocated it (X-Client-Region), when the
        proxy is trusted; a value that is not ISO 3166 shaped is ignored, not refused."""
        if not self._trust_proxy:
            return ""
        value = self._request.headers.get("X-Client-Region", "").strip().upper()
        return value if _REGION.fullmatch(value) and value != "XX" else ""


def _query_dict(raw_query: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(raw_query, keep_blank_values=True, max_num_fields=64, errors="strict")
    except ValueError:  # too many fields, or percent-escapes that are not UTF-8
        return {}
    return {key: value for key, value in pairs if key in ("lang", "tenant", "gtin")}


def _form(request: Request) -> tuple[str | None, float | None, float | None]:
    """pin, lat, lon from a urlencoded form body. Raises InvalidArgument naming the field."""
    kind = request.headers.get("Content-Type", "").partition(";")[0].strip().lower()
    if kind not in ("", "application/x-www-form-urlencoded"):
        raise InvalidArgument("form", f"content type {kind[:60]!r}, want a urlencoded form")
    try:
        text = request.body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=16, errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidArgument("form", "not a urlencoded UTF-8 form") from exc
    values = dict(pairs)
    pin = values.get("pin", "").strip() or None
    coordinates = [_coordinate(values.get(name, ""), name) for name in ("lat", "lon")]
    return pin, coordinates[0], coordinates[1]


def _upload(request: Request) -> tuple[bytes, str | None]:
    """(image, pin) from a multipart/form-data body (fields ``image`` and ``pin``) or from a
    body that is the image itself. Raises InvalidArgument naming the field."""
    kind = request.headers.get("Content-Type", "").partition(";")[0].strip().lower()
    if kind in _IMAGE_TYPES:
        return request.body, None
    if kind != "multipart/form-data":
        raise InvalidArgument("form", f"content type {kind[:60]!r}, want multipart/form-data")
    header = request.headers.get("Content-Type", "")[:200].encode("latin-1", "replace")
    message = BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + header + b"\r\n\r\n" + request.body
    )
    if not message.is_multipart() or message.defects:
        raise InvalidArgument("form", "not a well-formed multipart/form-data body")
    fields: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str) and name in ("image", "pin") and name not in fields:
            payload = part.get_payload(decode=True)
            fields[name] = payload if isinstance(payload, bytes) else b""
    if not fields.get("image"):
        raise InvalidArgument("image", "required: a photo of the QR code")
    pin = fields.get("pin", b"")
    try:
        pin_text = pin.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise InvalidArgument("pin", "not UTF-8") from exc
    return fields["image"], pin_text or None


def _coordinate(text: str, name: str) -> float | None:
    if not text.strip():
        return None
    if len(text) > 32:
        raise InvalidArgument(name, "over 32 characters")
    try:
        return float(text)
    except ValueError as exc:
        raise InvalidArgument(name, "not a number") from exc


def _wants_json(accept: str) -> bool:
    """True when the client prefers application/json (named explicitly) over text/html."""
    ranks: dict[str, float] = {}
    for item in accept[:1024].split(","):
        kind, _, params = item.partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        ranks[kind.strip().lower()] = q
    json_q = ranks.get("application/json", 0.0)
    html_q = max(ranks.get(k, 0.0) for k in ("text/html", "text/*", "*/*"))
    return json_q > 0.0 and json_q >= html_q and "application/json" in ranks


def _status_of(verification: Verification) -> int:
    """A verdict is an answer (200), except INVALID: a link we could not read is the
    caller's error (400), one we could read but do not know is not found (404)."""
    if verification.verdict is not Verdict.INVALID:
        return HTTPStatus.OK
    if any(r.code == "unparseable" for r in verification.reasons):
        return HTTPStatus.BAD_REQUEST
    return HTTPStatus.NOT_FOUND


def _cookie(session: str, https: bool) -> str:
    cookie = f"{SESSION_COOKIE}={session}; Path=/; Max-Age={SESSION_MAX_AGE_S}; HttpOnly"
    return cookie + "; SameSite=Lax" + ("; Secure" if https else "")


# ----------------------------------------------------------------------- response helpers


def _json(
    status: int, body: Mapping[str, Any], *, cache: str = "no-store", cors: bool = True
) -> Response:
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str)
    headers = [("Cache-Control", cache)]
    if cors:
        headers.append(("Access-Control-Allow-Origin", "*"))
    return Response(status, text.encode("utf-8"), "application/json; charset=utf-8", headers)


def _preflight(allowed: tuple[str, ...]) -> Response:
    return Response(
        HTTPStatus.NO_CONTENT,
        headers=[
            ("Access-Control-Allow-Origin", "*"),
            ("Access-Control-Allow-Methods", ", ".join(allowed)),
            ("Access-Control-Allow-Headers", "Accept, Accept-Language, Content-Type"),
            ("Access-Control-Max-Age", "86400"),
            ("Allow", ", ".join(allowed)),
        ],
    )


def _secure(response: Response, nonce: str) -> None:
    """The headers every response carries. Scripts and styles run only with this
    response's nonce; forms post only to us; nothing may frame the page."""
    csp = (
        "default-src 'none'; "
        f"script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; img-src 'self' data:; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
    response.headers += [
        ("Content-Security-Policy", csp),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("X-Frame-Options", "DENY"),
        ("Permissions-Policy", "geolocation=(self), camera=(), microphone=()"),
    ]


def verification_json(verification: Verification, locale: str) -> dict[str, Any]:
    """The verdict as the JSON API returns it (no tenant id, no alert kinds: those are
    the brand's business, not the scanner's)."""
    product = verification.product
    return {
        "verification_id": verification.verification_id,
        "verdict": verification.verdict.value,
        "title": messages.verdict_title(verification.verdict, locale),
        "advice": messages.verdict_advice(verification.verdict, locale),
        "reasons": [
            {
                "code": reason.code,
                "rule": reason.rule,
                "verdict": reason.verdict.value,
                "message": messages.reason_message(reason, locale),
            }
            for reason in verification.reasons
        ],
        "risk_score": verification.risk_score,
        "verified_at": _iso(verification.verified_at),
        "serial": verification.serial,
        "product": None
        if product is None
        else {
            "gtin": product.gtin,
            "name": product.name,
            "lot": product.lot,
            "expiry": _iso(product.expiry),
            "production_date": _iso(product.production_date),
            "brand": product.brand,
        },
        "first_verified_at": _iso(verification.first_verified_at),
        "first_verified_region": verification.first_verified_region,
        "session_count": verification.session_count,
        "pin_available": verification.pin_available,
        "pin_confirmed": verification.pin_confirmed,
        "degraded": verification.degraded,
        "locale": locale,
    }


def _iso(value: date | datetime | None) -> str | None:
    return None if value is None else value.isoformat()


_TONE = {
    Verdict.AUTHENTIC: "good",
    Verdict.AUTHENTIC_SEEN_BEFORE: "caution",
    Verdict.DIVERTED: "caution",
    Verdict.EXPIRED: "caution",
    Verdict.SUSPECT_CLONE: "bad",
    Verdict.COUNTERFEIT: "bad",
    Verdict.RECALLED: "bad",
    Verdict.INACTIVE: "bad",
    Verdict.INVALID: "neutral",
}


_CONFIRMABLE = frozenset({Verdict.AUTHENTIC, Verdict.AUTHENTIC_SEEN_BEFORE})


def _page_facts(verification: Verification, view: _View) -> dict[str, Any]:
    locale, labels = view.locale, messages.labels(view.locale)
    product = verification.product
    rows: list[tuple[str, str]] = []
    if product is not None:
        rows = [
            (labels["name"], product.name),
            (labels["brand"], product.brand),
            (labels["gtin"], product.gtin),
            (labels["lot"], product.lot),
            (labels["serial"], verification.serial),
            (labels["expiry"], _shown_date(product.expiry, locale)),
            (labels["production_date"], _shown_date(product.production_date, locale)),
        ]
    history: list[tuple[str, str]] = []
    if verification.first_verified_at is not None:
        when = messages.format_datetime(verification.first_verified_at, locale)
        history.append((labels["first_verified"], when))
    if verification.first_verified_region:
        history.append((labels["first_region"], verification.first_verified_region))
    if verification.session_count:
        history.append((labels["session_count"], str(verification.session_count)))
    title = messages.verdict_title(verification.verdict, locale)
    advice = messages.verdict_advice(verification.verdict, locale)
    if verification.pin_confirmed and verification.verdict in _CONFIRMABLE:
        # The hidden PIN is the decisive first-opening signal: "seen before" (most likely by
        # this very phone, a minute ago) must not be the headline of a confirmed opening.
        title, advice = labels["confirmed_title"], labels["confirmed_advice"]
    return {
        "verdict": verification.verdict.value,
        "tone": "good" if title == labels["confirmed_title"] else _TONE[verification.verdict],
        "title": title,
        "advice": advice,
        "reasons": [messages.reason_message(r, locale) for r in verification.reasons],
        "product_rows": [(k, v) for k, v in rows if v],
        "history_rows": history,
        "risk": f"{round(verification.risk_score * 100)}/100",
        "verification_id": verification.verification_id,
        "verified_at": messages.format_datetime(verification.verified_at, locale),
        "show_pin_form": verification.pin_available and not verification.pin_confirmed,
        "pin_confirmed": verification.pin_confirmed,
        "degraded": verification.degraded,
    }


def _shown_date(value: date | None, locale: str) -> str:
    return "" if value is None else messages.format_date(value, locale)


# ---------------------------------------------------------------------------- the server


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "Sealmark"
    timeout = 20  # seconds a client may take to send a request: no slow-loris threads
    # The standard library answers a request line it cannot parse as HTTP/0.9 (a bare body,
    # no status line); as HTTP/1.0 the 400 it sends has one.
    default_request_version = "HTTP/1.0"

    def version_string(self) -> str:
        return self.server_version  # no Python version for scanners to match

    def parse_request(self) -> bool:
        """The standard library's parsing, less what lets a request hide in another: HTTP/0.9
        request lines (no version) and more than one Content-Length are 400; a body on a
        method that takes none is never read as the next request (the connection closes)."""
        raw: bytes = getattr(self, "raw_requestline", b"")
        if len(raw.split()) == 2:
            self.command, self.close_connection = "", True
            self.request_version = self.default_request_version
            self.requestline = str(raw, "iso-8859-1").rstrip("\r\n")
            self.send_error(HTTPStatus.BAD_REQUEST)
            return False
        if not super().parse_request():
            return False
        if len(self.headers.get_all("Content-Length") or ()) > 1:
            self.send_error(HTTPStatus.BAD_REQUEST)
            return False
        if self.command != "POST" and (
            self.headers.get("Content-Length", "0").strip() != "0"
            or self.headers.get("Transfer-Encoding")
        ):
            self.close_connection = True
        return True

    def do_GET(self) -> None:
        self._answer()

    def do_HEAD(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def do_OPTIONS(self) -> None:
        self._answer()

    def _answer(self) -> None:
        body = b""
        if self.command == "POST":
            length = self._content_length()
            if length is None:
                return
            body = self.rfile.read(length)
        request = Request(
            method=self.command,
            target=self.path,
            headers=_Headers(self.headers),
            body=body,
            client=self.client_address[0],
        )
        try:
            response = self.server.app.handle(request)
        except Exception:  # handle() answers every error itself; this is the last resort
            log.exception("verify_http.unanswered", method=self.command)
            self.send_error(HTTPStatus.INTERNAL_SERVER_ERROR)
            return
        self._send(response)

    def _content_length(self) -> int | None:
        """The POST body's length, or None after answering 411 / 413 / 400."""
        if self.headers.get("Transfer-Encoding"):
            self._refuse(HTTPStatus.LENGTH_REQUIRED)
            return None
        raw = self.headers.get("Content-Length")
        if raw is None:
            self._refuse(HTTPStatus.LENGTH_REQUIRED)
            return None
        if not raw.isascii() or not raw.strip().isdigit():
            self._refuse(HTTPStatus.BAD_REQUEST)
            return None
        length = int(raw)
        limit = MAX_UPLOAD_BYTES if self.path.partition("?")[0] == SCAN_PATH else MAX_BODY_BYTES
        if length > limit:
            self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            return None
        return length

    def _refuse(self, status: HTTPStatus) -> None:
        """Answer without reading the body, and close: what is left of it is not a request."""
        self.close_connection = True
        view = _View(
            Request("POST", self.path, _Headers(self.headers), b"", self.client_address[0]),
            trust_proxy=False,
        )
        key = (
            "error_too_large"
            if status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
            else "error_bad_input"
        )
        if key == "error_too_large" and view.path == SCAN_PATH:
            key = "error_image_too_large"
        response = self.server.app.error(view, status, key)
        _secure(response, view.nonce)
        response.headers.append(("Connection", "close"))
        self._send(response)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD" and response.status not in (204, 304):
            self.wfile.write(response.body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors found by the standard library before routing (malformed request line,
        headers too long, unsupported method): a static page, nothing echoed."""
        self.close_connection = True
        body = render_plain_error(code)
        self.send_response(code)
        for name, value in (
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("Connection", "close"),
            ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
        ):
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # Access lines carry serials and client addresses: debug only, and never a body.
        log.debug("verify_http.access", line=format % args)


class _Headers(Mapping[str, str]):
    """The request headers, looked up case-insensitively (first value wins)."""

    def __init__(self, message: Any) -> None:
        self._message = message

    def __getitem__(self, key: str) -> str:
        value = self._message.get(key)
        if value is None:
            raise KeyError(key)
        return str(value)

    def __iter__(self) -> Iterator[str]:
        return iter(self._message.keys())

    def __len__(self) -> int:
        return len(self._message.keys())


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        app_factory: Callable[[int], VerifyApp],
        reuse_port: bool = False,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.allow_reuse_port = reuse_port  # other serving processes share the port
        super().__init__(address, _Handler)
        self.app = app_factory(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that broke outside the handler's own answers. A client that went away
        (reset, closed before reading the answer) is routine under load; anything else is
        logged with its traceback. Never socketserver's raw traceback on stderr."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            log.debug("verify_http.client_gone", error=type(error).__name__)
        else:
            log.exception("verify_http.connection_failed")


class VerifyHttp:
    """A running HTTP face: ``port``, ``url`` and :meth:`stop`."""

    def __init__(self, server: _Server, host: str) -> None:
        self._server = server
        self.port: int = server.server_address[1]
        shown = "localhost" if host in ("", "0.0.0.0", "::") else host  # noqa: S104
        self.url = (
            f"http://{shown}:{self.port}" if ":" not in shown else f"http://[{shown}]:{self.port}"
        )
        self._thread = threading.Thread(
            target=server.serve_forever, name="verify-http", kwargs={"poll_interval": 0.2}
        )
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        """Stop taking connections and close the socket; requests under way run to their end
        on their own threads."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_http(
    verifier: VerifierPort,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    clock: Clock | None = None,
    trust_proxy: bool = False,
    reuse_port: bool = False,
    images: ImagePort | None = None,
) -> tuple[VerifyHttp, int]:
    """Start the HTTP face on ``host:port`` (0 = any free port) in a thread of its own;
    ``reuse_port`` lets other serving processes bind the same port; with ``images`` it also
    serves the /scan upload page. Returns the running face and the port it bound."""

    def app_factory(bound: int) -> VerifyApp:
        shown = "localhost" if host in ("", "0.0.0.0", "::") else host  # noqa: S104
        fallback = (
            f"{shown}:{bound}" if _HOST.fullmatch(f"{shown}:{bound}") else f"localhost:{bound}"
        )
        return VerifyApp(
            verifier, fallback_host=fallback, clock=clock, trust_proxy=trust_proxy, images=images
        )

    running = VerifyHttp(_Server((host, port), app_factory, reuse_port), host)
    log.info("verify_http.started", url=running.url)
    return running, running.port

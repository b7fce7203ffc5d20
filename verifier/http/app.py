"""The routes and their handlers: request in, response out, no sockets (the server loop is
sealmark.server.http_server, started by verifier.http.server). The handler is thin: it parses
the request, calls one :class:`VerifierPort` method and renders the result; SealmarkError
subclasses become HTTP statuses here and only here."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from sealmark.clock import Clock, SystemClock
from sealmark.errors import InvalidArgument, NotFound, ResourceExhausted, Unavailable
from sealmark.gs1.code import GS1Code
from verifier.domain import ClientContext, Verification
from verifier.http.media import MEDIA_PREFIX, MediaPort, media_facts, media_json, media_response
from verifier.http.pages import (
    Pages,
    json_response,
    page_facts,
    preflight,
    secure,
    status_of,
    verification_json,
)
from verifier.http.requests import (
    MAX_BODY_BYTES,
    MAX_UPLOAD_BYTES,
    NO_FORM,
    SCAN_PATH,
    Request,
    RequestView,
    Response,
    read_form,
    read_upload,
)
from verifier.http.resolver import ResolverFace, ResolverPort, resolver_description
from verifier.http.sessions import set_cookie

if TYPE_CHECKING:
    from verifier.images import ImageVerification

log = structlog.get_logger("sealmark.verify_http")

_QUERY_PARAM = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_PRIMARY_KEY_SEGMENTS = frozenset({"01", "00"})


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
        media: MediaPort | None = None,
        resolver: ResolverPort | None = None,
    ) -> None:
        self._verifier = verifier
        self._images = images
        self._media = media
        self._fallback_host = fallback_host
        self._clock = clock or SystemClock()
        self._trust_proxy = trust_proxy
        self._pages = Pages()
        # Without a resolver (a test's bare app) only serialised links are answered.
        self._links_face = (
            ResolverFace(resolver, self._pages, fallback_host) if resolver is not None else None
        )

    def handle(self, request: Request) -> Response:
        """Answer one request; never raises (an unexpected error is logged and becomes a
        plain 500 page)."""
        view = RequestView(request, self._trust_proxy)
        try:
            response = self._route(request, view)
        except Exception:
            log.exception("verify_http.unexpected", method=request.method, route=view.route)
            response = self.error(view, HTTPStatus.INTERNAL_SERVER_ERROR, "error_internal")
        secure(response, view.nonce)
        return response

    def _route(self, request: Request, view: RequestView) -> Response:
        path, method = view.path, request.method
        routes: dict[str, tuple[tuple[str, ...], Callable[[Request, RequestView], Response]]] = {
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
        elif path.startswith(MEDIA_PREFIX) and self._media is not None:
            allowed, handler = ("GET", "HEAD"), self._media_file
            view.route = MEDIA_PREFIX
        elif _PRIMARY_KEY_SEGMENTS & set(path.split("/")):
            allowed, handler = ("GET", "HEAD", "POST", "OPTIONS"), self._verify
            view.route = "digital_link"
            if path.endswith("/") and not path.endswith("//"):
                # One trailing slash (a resolver or a hand-typed link adds it) names the same
                # link; the parser refuses empty segments, so it goes before parsing.
                view.path = path[:-1]
        else:
            return self.error(view, HTTPStatus.NOT_FOUND, "error_not_found")
        if method not in allowed:
            response = self.error(view, HTTPStatus.METHOD_NOT_ALLOWED, "error_method")
            response.headers.append(("Allow", ", ".join(allowed)))
            return response
        if method == "OPTIONS":
            return preflight(allowed)
        return handler(request, view)

    # ---------------------------------------------------------------- the verification page

    def _verify(self, request: Request, view: RequestView) -> Response:
        face = self._links_face
        if face is not None and face.asks_resolver(request, view):
            answer = face.answer(request, view)  # a link type or the linkset
            if answer is not None:
                return answer
        payload = view.payload(self._fallback_host)
        try:  # parsed once: the use case takes this parse
            code = GS1Code.from_digital_link(payload, today=self._clock.now().date(), field="link")
        except InvalidArgument as exc:
            page = face.non_serialised(request, view) if face is not None else None
            if page is not None:  # /01/{gtin}[/10/{lot}], /00/{sscc}: the resolver's pages
                return page
            return self.error(view, HTTPStatus.BAD_REQUEST, "error_bad_link", exc.message)
        links = [("Link", face.link_header_for(payload))] if face is not None else []
        if request.method == "HEAD":  # a link checker's probe is not a consumer's scan
            return Response(
                HTTPStatus.OK,
                headers=[
                    ("Cache-Control", "no-store"),
                    ("Access-Control-Allow-Origin", "*"),
                    *links,
                ],
            )
        try:
            pin, latitude, longitude = read_form(request) if request.method == "POST" else NO_FORM
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
        status = status_of(verification)
        if view.wants_json:
            body = verification_json(verification, view.locale, view.region())
            body["media"] = media_json(self._media, verification)
            response = json_response(status, body)
        else:
            facts = page_facts(verification, view)
            facts.update(media_facts(self._media, verification, view.locale))
            response = self._page(status, "verify.html", view, facts)
        response.headers += [
            ("Cache-Control", "no-store"),
            ("Vary", "Accept, Accept-Language, Cookie"),
            *links,
        ]
        if new_session:
            response.headers.append(("Set-Cookie", set_cookie(session, view.https)))
        return response

    # -------------------------------------------------------------- a photo of the label

    def _scan(self, request: Request, view: RequestView) -> Response:
        assert self._images is not None
        if request.method != "POST":
            response = self._page(HTTPStatus.OK, "scan.html", view, {"result": None})
            response.headers.append(("Cache-Control", "no-store"))
            return response
        try:
            image, pin = read_upload(request)
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
            response = json_response(HTTPStatus.OK, body)
        else:
            facts = page_facts(result.verification, view)
            facts["show_pin_form"] = False  # the PIN goes with the photo, on the form below
            page = {"result": facts, "mark": mark, "mark_score": f"{covert.score:.2f}"}
            response = self._page(HTTPStatus.OK, "scan.html", view, page)
        response.headers += [("Cache-Control", "no-store"), ("Vary", "Accept, Accept-Language")]
        if new_session:
            response.headers.append(("Set-Cookie", set_cookie(session, view.https)))
        return response

    # ------------------------------------------------------------ the brand's pictures

    def _media_file(self, request: Request, view: RequestView) -> Response:
        assert self._media is not None
        try:
            response = media_response(self._media, request, view)
        except Unavailable:
            response = self.error(view, HTTPStatus.SERVICE_UNAVAILABLE, "error_unavailable")
            response.headers.append(("Retry-After", "30"))
            return response
        if response is None:
            return self.error(view, HTTPStatus.NOT_FOUND, "error_not_found")
        return response

    # ------------------------------------------------------------------------ other routes

    def _home(self, request: Request, view: RequestView) -> Response:
        return self._page(HTTPStatus.OK, "home.html", view, {})

    def _health(self, request: Request, view: RequestView) -> Response:
        try:
            body = self._verifier.health()
        except Exception:  # whatever broke, the answer to "are you well" is no, not a 500
            log.warning("verify_http.health_failed", exc_info=True)
            return json_response(
                HTTPStatus.SERVICE_UNAVAILABLE, {"status": "down"}, cache="no-store"
            )
        return json_response(HTTPStatus.OK, body, cache="no-store")

    def _resolver(self, request: Request, view: RequestView) -> Response:
        root = f"{view.scheme}://{view.host(self._fallback_host)}"
        description = resolver_description(root, sscc=self._links_face is not None)
        return json_response(HTTPStatus.OK, description, cache="public, max-age=3600", cors=True)

    def _keys(self, request: Request, view: RequestView) -> Response:
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
            return json_response(HTTPStatus.BAD_REQUEST, error, cors=True)
        except NotFound as exc:
            error = {"error": "not_found", "message": exc.message}
            return json_response(HTTPStatus.NOT_FOUND, error, cors=True)
        except ResourceExhausted:
            error = {"error": "resource_exhausted", "message": "too many requests"}
            return json_response(HTTPStatus.TOO_MANY_REQUESTS, error, cors=True)
        except Unavailable:
            error = {"error": "unavailable", "message": "try again later"}
            return json_response(HTTPStatus.SERVICE_UNAVAILABLE, error, cors=True)
        return json_response(HTTPStatus.OK, key_set, cache="public, max-age=300", cors=True)

    # ------------------------------------------------- what the server loop asks (HttpApp)

    def refused(self, request: Request, status: int) -> Response:
        """The page of a request the server refused before handling it (busy: 503; a POST
        too large: 413, malformed or without a length: 400 / 411), in the reader's language."""
        view = RequestView(request, trust_proxy=False)
        key = {
            HTTPStatus.SERVICE_UNAVAILABLE: "error_unavailable",
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE: "error_too_large",
        }.get(HTTPStatus(status), "error_bad_input")
        if key == "error_too_large" and view.path == SCAN_PATH:
            key = "error_image_too_large"
        response = self.error(view, status, key)
        secure(response, view.nonce)
        return response

    @staticmethod
    def body_limit(path: str) -> int:
        return MAX_UPLOAD_BYTES if path == SCAN_PATH else MAX_BODY_BYTES

    # ---------------------------------------------------------------------------- rendering

    def error(self, view: RequestView, status: int, key: str, detail: str = "") -> Response:
        """An error page (or JSON when asked) in the reader's language (see Pages.error)."""
        return self._pages.error(view, status, key, detail)

    def _page(
        self, status: int, name: str, view: RequestView, facts: Mapping[str, Any]
    ) -> Response:
        return self._pages.page(status, name, view, facts)

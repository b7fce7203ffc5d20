"""What a request says: the request and response records, the view of one request (path,
query, language, session, client, region) and the parsing of its forms and uploads. Every
parser raises InvalidArgument naming the field, never an exception's text."""

from __future__ import annotations

import email.policy
import re
import secrets
from email.parser import BytesParser
from urllib.parse import parse_qsl, urlsplit

from sealmark.covert.reader import MAX_IMAGE_BYTES
from sealmark.errors import InvalidArgument
from sealmark.server.http_server import Request, Response
from verifier import messages
from verifier.http.sessions import session_of

MAX_BODY_BYTES = 4096  # a PIN form needs a few dozen bytes
MAX_UPLOAD_BYTES = MAX_IMAGE_BYTES + 16 * 1024  # /scan: one image and a PIN, with their parts
SCAN_PATH = "/scan"
_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp"})
HOST = re.compile(r"[A-Za-z0-9.-]{1,253}(?::[0-9]{1,5})?")
_REGION = re.compile(r"[A-Za-z]{2}(?:-[A-Za-z0-9]{1,3})?")
__all__ = ["HOST", "MAX_BODY_BYTES", "MAX_UPLOAD_BYTES", "SCAN_PATH", "Request", "Response"]
NO_FORM: tuple[str | None, float | None, float | None] = (None, None, None)


class RequestView:
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
        return host if HOST.fullmatch(host) else fallback

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
        return session_of(self._request.headers.get("Cookie", ""))

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


def read_form(request: Request) -> tuple[str | None, float | None, float | None]:
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


def read_upload(request: Request) -> tuple[bytes, str | None]:
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

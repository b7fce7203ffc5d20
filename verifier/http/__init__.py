"""The Verifier's HTTP face: the consumer page behind every Digital Link URL, the public key
set, the GS1 resolver description and a health check.

Routes (all public, no credential; the use case rate-limits per client)::

    GET|POST /01/{gtin}[/22/…][/10/{lot}][/21/{serial}]?17=…&8030=…   the verdict page
             (Accept: application/json gives the verdict as JSON; POST field pin confirms
             the hidden PIN, fields lat/lon add the phone's location)
    GET /.well-known/gs1resolver    resolver description (GS1-Conformant Resolver 1.2)
    GET /01/{gtin}[/10/{lot}], /00/{sscc}, ?linkType=…, Accept: application/linkset+json
                                    the GS1 resolver: product, lot and SSCC pages, linkset,
                                    link type redirects (verifier.http.resolver)
    GET /keys?tenant=… | ?gtin=…    the brand's public key set (JSON)
    GET /healthz                    {"status": "ok"|"degraded", "redis": "up"|"down"}
    GET|POST /scan                  a photo of the label: upload form, then the verdict and
             the covert mark (POST multipart/form-data fields image and pin, or the image
             itself as image/png|jpeg|webp; Accept: application/json gives JSON)

The handler is thin: it parses the request, calls one :class:`VerifierPort` method and
renders the result; SealmarkError subclasses become HTTP statuses there and only there. A link
that is not a well-formed GS1 Digital Link is refused with 400 before the use case sees it (a
well-formed one without a serial is the resolver's). Nothing from the request is echoed
unescaped (Jinja2 autoescape), no error shows a stack trace, and the pages work without
JavaScript: the only script, a nonce-bound one, offers the phone's location as an optional
extra.

One module per concern: ``app`` (routes and handlers), ``requests`` (the request, its view and
its forms), ``sessions`` (the session cookie), ``pages`` (templates, JSON, headers),
``resolver`` (the GS1 resolver's answers) and ``server`` (uvicorn in a thread of its own, the
limits and the thread pool, :func:`start_http`).
"""

from __future__ import annotations

from verifier.http.app import ImagePort, VerifierPort, VerifyApp
from verifier.http.pages import render_plain_error, verification_json
from verifier.http.requests import MAX_BODY_BYTES, MAX_UPLOAD_BYTES, SCAN_PATH, Request, Response
from verifier.http.server import VerifyHttp, start_http
from verifier.http.sessions import SESSION_COOKIE, SESSION_MAX_AGE_S

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_UPLOAD_BYTES",
    "SCAN_PATH",
    "SESSION_COOKIE",
    "SESSION_MAX_AGE_S",
    "ImagePort",
    "Request",
    "Response",
    "VerifierPort",
    "VerifyApp",
    "VerifyHttp",
    "render_plain_error",
    "start_http",
    "verification_json",
]

"""What the consumer is shown: the pages (Jinja2 templates in verifier/templates), the JSON
answers, the verdict as facts for a page, and the headers every response carries."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from http import HTTPStatus
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from sealmark.server.http_server import page_headers, render_plain_error
from verifier import messages
from verifier.domain import Verdict, Verification
from verifier.http.requests import RequestView, Response
from verifier.regions import region_name

__all__ = ["Pages", "json_response", "render_plain_error", "secure", "verification_json"]


class Pages:
    """The HTML pages (Jinja2, autoescaped, every name defined), in the reader's language."""

    def __init__(self) -> None:
        self._templates = Environment(
            loader=PackageLoader("verifier", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def page(self, status: int, name: str, view: RequestView, facts: Mapping[str, Any]) -> Response:
        body = self._templates.get_template(name).render(
            L=messages.labels(view.locale),
            locale=view.locale,
            other_locale=messages.ZH if view.locale == messages.EN else messages.EN,
            other_href=view.lang_href(),
            nonce=view.nonce,
            **facts,
        )
        return Response(status, body.encode("utf-8"))

    def error(self, view: RequestView, status: int, key: str, detail: str = "") -> Response:
        """An error page (or JSON when asked) in the reader's language; ``detail`` is the
        field-naming message of an InvalidArgument, never an exception's text."""
        if view.wants_json:
            error = {"error": HTTPStatus(status).phrase.lower().replace(" ", "_")}
            if detail:
                error["message"] = detail
            response = json_response(status, error, cache="no-store")
        else:
            facts = {"key": key, "status": int(status), "detail": detail}
            response = self.page(status, "error.html", view, facts)
            response.headers.append(("Cache-Control", "no-store"))
        return response


def status_of(verification: Verification) -> int:
    """A verdict is an answer (200), except INVALID: a link we could not read is the
    caller's error (400), one we could read but do not know is not found (404)."""
    if verification.verdict is not Verdict.INVALID:
        return HTTPStatus.OK
    if any(r.code == "unparseable" for r in verification.reasons):
        return HTTPStatus.BAD_REQUEST
    return HTTPStatus.NOT_FOUND


def json_response(
    status: int, body: Mapping[str, Any], *, cache: str = "no-store", cors: bool = True
) -> Response:
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str)
    headers = [("Cache-Control", cache)]
    if cors:
        headers.append(("Access-Control-Allow-Origin", "*"))
    return Response(status, text.encode("utf-8"), "application/json; charset=utf-8", headers)


def preflight(allowed: tuple[str, ...]) -> Response:
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


def secure(response: Response, nonce: str) -> None:
    """The headers every response carries (:func:`page_headers`, the page's script with
    its nonce), and the location the phone may offer."""
    response.headers += page_headers(nonce, scripts=True)
    response.headers.append(("Permissions-Policy", "geolocation=(self), camera=(), microphone=()"))


def verification_json(verification: Verification, locale: str, region: str = "") -> dict[str, Any]:
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
        # Another consumer's check: its day (UTC) only, never its time.
        "first_verified_on": _iso(
            None
            if verification.first_verified_at is None
            else messages.day_of(verification.first_verified_at, messages.EN)
        ),
        "first_verified_region": verification.first_verified_region,
        "session_count": verification.session_count,
        "history_summary": history_summary(verification, region, locale),
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


def page_facts(verification: Verification, view: RequestView) -> dict[str, Any]:
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
    history = history_rows(verification, locale)
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
        "history_summary": history_summary(verification, view.region(), locale),
        "risk": f"{round(verification.risk_score * 100)}/100",
        "verification_id": verification.verification_id,
        "verified_at": messages.format_datetime(verification.verified_at, locale),
        "show_pin_form": verification.pin_available and not verification.pin_confirmed,
        "pin_confirmed": verification.pin_confirmed,
        "degraded": verification.degraded,
    }


def _shown_date(value: date | None, locale: str) -> str:
    return "" if value is None else messages.format_date(value, locale)


def history_rows(verification: Verification, locale: str) -> list[tuple[str, str]]:
    """The code's earlier checks as facts: the day (never the time) and the region (never
    the place) of the first one, and how many phones or browsers checked it."""
    labels = messages.labels(locale)
    rows: list[tuple[str, str]] = []
    first = verification.first_verified_at
    if first is not None:
        day = messages.day_of(first, locale)
        rows.append((labels["first_verified"], messages.format_date(day, locale)))
    if verification.first_verified_region:
        place = region_name(verification.first_verified_region, locale)
        rows.append((labels["first_region"], place))
    if verification.session_count:
        rows.append((labels["session_count"], str(verification.session_count)))
    return rows


def history_summary(verification: Verification, region: str, locale: str) -> list[str]:
    """The scan history told in sentences (:func:`verifier.messages.history_summary`);
    none for a code that is not the brand's (a counterfeit has no history to tell)."""
    if verification.product is None:
        return []
    first = verification.first_verified_at
    first_region = verification.first_verified_region
    return messages.history_summary(
        None if first is None else messages.day_of(first, locale),
        region_name(first_region, locale) if first_region else "",
        verification.session_count,
        too_many=any(r.code == "too_many_sessions" for r in verification.reasons),
        elsewhere=_other_region(region, first_region),
        locale=locale,
        suspect=verification.verdict is Verdict.SUSPECT_CLONE,
    )


def _other_region(here: str, first: str) -> bool:
    """Whether two scans were in different regions, as finely as both are known."""
    if not here or not first:
        return False
    if "-" in here and "-" in first:
        return here != first
    return here[:2] != first[:2]

"""Verification from an image: a photo or scan of a label in, the ordinary verdict on the code it
shows and the brand's covert mark (:mod:`sealmark.covert`) out.

Order of work: the client meets its rate limit first (finding and sampling a symbol costs tens of
milliseconds of CPU, a forged flood must not buy it), the image is bounded and decoded, the QR
Code's text is verified exactly as a typed-in or scanned payload (recorded as a scan, PIN and
all), and the mark is judged under the covert key of the tenant the verification found. The
verdict does not depend on the mark: labels printed without one are legitimate, and only the
brand knows which it printed. The covert key is derived per call and never leaves this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Protocol

from sealmark.covert.mark import Judgement, MarkTooSmall
from sealmark.covert.qr import DoesNotFit
from sealmark.covert.reader import check, find_symbol, load_image
from sealmark.crypto.covert import CovertKeys
from sealmark.errors import InvalidArgument
from sealmark.gs1.code import GS1Code
from verifier.domain import ClientContext, Verification, checked_context

IMAGE_FIELD = "image"


class MarkStatus(StrEnum):
    PRESENT = "present"
    ABSENT = "absent"
    UNREADABLE = "unreadable"
    NOT_CHECKED = "not_checked"  # not a serialised code of one of our brands


@dataclass(frozen=True)
class CovertResult:
    status: MarkStatus
    score: float = 0.0
    noise: float = 0.0
    modules: int = 0
    rule: str = ""


@dataclass(frozen=True)
class ImageVerification:
    payload: str  # the text of the QR Code
    verification: Verification
    covert: CovertResult


class Verifies(Protocol):
    """What this use case needs of :class:`verifier.usecases.Verifier`."""

    def admit(self, context: ClientContext) -> None: ...

    def verify(
        self,
        payload: str,
        pin: str | None,
        context: ClientContext,
        *,
        parsed: GS1Code | InvalidArgument | None = None,
    ) -> Verification: ...

    def today(self) -> date: ...


class ImageVerifier:
    def __init__(self, verifier: Verifies, covert_keys: CovertKeys) -> None:
        self._verifier = verifier
        self._keys = covert_keys

    def verify_image(
        self, image: bytes, pin: str | None, context: ClientContext
    ) -> ImageVerification:
        """The verdict on the code in ``image`` and its covert mark. Raises InvalidArgument
        naming ``image`` (empty, oversized, unsupported, undecodable, no QR Code) or the field
        Verifier.verify names, ResourceExhausted for a client over its limits."""
        context = checked_context(context, "context")
        self._verifier.admit(context)
        reading = find_symbol(load_image(image, IMAGE_FIELD))
        if reading is None:
            raise InvalidArgument(IMAGE_FIELD, "no readable QR Code in the image")
        # Parsed once, here: the covert mark is keyed by the code, and verify() takes the parse.
        parsed: GS1Code | InvalidArgument
        try:
            parsed = GS1Code.from_scan(reading.text, today=self._verifier.today())
        except InvalidArgument as exc:
            parsed = exc
        verification = self._verifier.verify(reading.text, pin, context, parsed=parsed)
        covert = CovertResult(MarkStatus.NOT_CHECKED)
        code_key = None if isinstance(parsed, InvalidArgument) else parsed.gtin + parsed.serial
        if verification.tenant_id and code_key is not None:
            covert_key = self._keys.for_tenant(verification.tenant_id)
            try:
                covert = _result(check(reading, covert_key, code_key))
            except MarkTooSmall as exc:
                covert = CovertResult(MarkStatus.NOT_CHECKED, rule=str(exc))
            except DoesNotFit:
                covert = CovertResult(MarkStatus.UNREADABLE, rule="text does not fit the symbol")
        return ImageVerification(reading.text, verification, covert)


def _result(judgement: Judgement) -> CovertResult:
    return CovertResult(
        MarkStatus(judgement.status.value),
        round(judgement.score, 4),
        round(judgement.noise, 4),
        judgement.modules,
        judgement.why,
    )

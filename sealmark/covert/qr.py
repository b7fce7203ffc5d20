"""QR Code matrices from the ``qrcode`` library, with their :class:`~sealmark.covert.geometry.
Layout`, clean or covertly marked.

The issuer's labels and the verifier's reader both encode through :func:`encode`, so a label and
the reader's clean reference come from the same encoder; the reader passes the version, EC level
and mask it read from the image, so that a later change of the library's mask choice does not
turn every printed mark into noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import qrcode
import qrcode.base
import qrcode.constants
import qrcode.exceptions

from sealmark.covert.geometry import Block, Layout, Module, layout
from sealmark.covert.mark import apply, plan

_LEVELS = {
    "L": qrcode.constants.ERROR_CORRECT_L,
    "M": qrcode.constants.ERROR_CORRECT_M,
    "Q": qrcode.constants.ERROR_CORRECT_Q,
    "H": qrcode.constants.ERROR_CORRECT_H,
}


@dataclass(frozen=True)
class Encoded:
    layout: Layout
    rows: tuple[tuple[bool, ...], ...]  # True = dark, no quiet zone


class DoesNotFit(ValueError):
    """The text does not fit the asked version (or any version at this EC level)."""


def encode(
    text: str | bytes, ec_level: str = "M", *, version: int | None = None, mask: int | None = None
) -> Encoded:
    """``text`` as a plain QR Code (byte mode, as the library segments it), in the smallest
    version that fits unless ``version`` is given; the library's best mask unless ``mask`` is.
    Raises DoesNotFit, or ValueError for a bad EC level, version or mask."""
    if ec_level not in _LEVELS:
        raise ValueError(f"EC level {ec_level!r}, want one of {', '.join(_LEVELS)}")
    qr = qrcode.QRCode(
        version=version, error_correction=_LEVELS[ec_level], border=0, mask_pattern=mask
    )
    qr.add_data(text)
    try:
        qr.make(fit=version is None)
    except (qrcode.exceptions.DataOverflowError, ValueError) as exc:
        raise DoesNotFit(f"{len(text)} characters do not fit: {exc}") from exc
    blocks = [
        Block(b.total_count, b.data_count)
        for b in qrcode.base.rs_blocks(qr.version, qr.error_correction)
    ]
    rows = tuple(tuple(bool(m) for m in row) for row in qr.get_matrix())
    return Encoded(layout(qr.version, ec_level, blocks), rows)


def flips(encoded: Encoded, covert_key: bytes, code_key: str) -> tuple[Module, ...]:
    """The modules :func:`~sealmark.covert.mark.plan` marks for this code in this symbol."""
    return plan(covert_key, code_key, encoded.layout)


def marked(encoded: Encoded, covert_key: bytes, code_key: str) -> Encoded:
    """``encoded`` with the brand's covert mark for ``code_key`` applied. Raises
    :class:`~sealmark.covert.mark.MarkTooSmall` for a symbol too small to carry one."""
    return Encoded(encoded.layout, apply(encoded.rows, flips(encoded, covert_key, code_key)))

"""The covert mark's pure parts: QR geometry checked against the ``qrcode`` encoder and
zxing-cpp, the keyed plan's promises (never a function module, within budget, keyed), and the
decision rule on hand-made readings."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest
import qrcode.base
import qrcode.util
import zxingcpp
from PIL import Image

from sealmark.covert import qr
from sealmark.covert.geometry import (
    EC_LEVELS,
    Block,
    alignment_centres,
    data_modules,
    format_modules,
    function_modules,
    layout,
    size_of,
)
from sealmark.covert.mark import (
    BUDGET,
    MAX_FOREIGN_NOISE,
    MAX_NOISE,
    MIN_GRID_AGREEMENT,
    MIN_MODULES,
    MODULES_PER_CODEWORD,
    PRESENT_SCORE,
    MarkTooSmall,
    Status,
    apply,
    judge,
    plan,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
LINK = "https://id.sealmark.example/01/09520123456788/10/LOT-1/21/{serial}?17=261130&8030=" + (
    "x2Jd_Y-7" * 10 + "Qm8Z0a"
)


def code_key(serial: str) -> str:
    return "09520123456788" + serial


def picture(rows: tuple[tuple[bool, ...], ...], px: int = 4) -> Image.Image:
    n = len(rows)
    image = Image.new("L", ((n + 8) * px, (n + 8) * px), 255)
    for r, row in enumerate(rows):
        for c, dark in enumerate(row):
            if dark:
                image.paste(0, ((c + 4) * px, (r + 4) * px, (c + 5) * px, (r + 5) * px))
    return image


# -- geometry ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", range(1, 41))
def test_alignment_centres_match_the_encoder(version: int) -> None:
    assert list(alignment_centres(version)) == qrcode.util.pattern_position(version)


@pytest.mark.parametrize(("version", "level"), list(itertools.product(range(1, 41), EC_LEVELS)))
def test_every_block_table_fills_the_data_area(version: int, level: str) -> None:
    code = getattr(qrcode.constants, f"ERROR_CORRECT_{level}")
    blocks = [Block(b.total_count, b.data_count) for b in qrcode.base.rs_blocks(version, code)]
    shape = layout(version, level, blocks)
    modules = [m for block in shape.codewords for cw in block for m in cw]
    assert len(modules) == len(set(modules)) == 8 * sum(b.total for b in blocks)
    assert not set(modules) & function_modules(version)
    assert len(data_modules(version)) + len(function_modules(version)) == size_of(version) ** 2


def test_a_block_table_that_does_not_fit_is_refused() -> None:
    with pytest.raises(ValueError, match="do not fill"):
        layout(5, "M", [Block(60, 40)])
    with pytest.raises(ValueError, match="EC level"):
        layout(5, "X", [Block(134, 86)])


@pytest.mark.parametrize("serial", ["A1", "Zz9-Qq8_Xx7"])
def test_codeword_modules_hold_the_encoders_codewords(serial: str) -> None:
    # Read every block back through the layout (unmasked) and recompute its EC codewords with
    # the encoder's own Reed-Solomon code: placement, interleaving and block split all agree.
    mask = 5
    encoded = qr.encode(LINK.format(serial=serial), "M", mask=mask)
    masked = qrcode.util.mask_func(mask)
    rows = encoded.rows

    def byte(modules: tuple[tuple[int, int], ...]) -> int:
        bits = [rows[r][c] ^ bool(masked(r, c)) for r, c in modules]
        return sum(bit << (7 - i) for i, bit in enumerate(bits))

    assert len(encoded.layout.blocks) > 1
    for block, codewords in zip(encoded.layout.blocks, encoded.layout.codewords, strict=True):
        read = [byte(cw) for cw in codewords]
        buffer = SimpleNamespace(buffer=read[: block.data])
        one = [qrcode.base.RSBlock(block.total, block.data)]
        assert qrcode.util.create_bytes(buffer, one) == read  # type: ignore[arg-type]


def test_format_modules_are_function_modules() -> None:
    for version in (1, 7, 40):
        assert len(format_modules(version)) == 31  # 2 x 15 bits and the dark module
        assert format_modules(version) <= function_modules(version)


# -- the plan ---------------------------------------------------------------------------------


def test_the_plan_stays_in_the_budget_and_off_function_modules() -> None:
    encoded = qr.encode(LINK.format(serial="AbC123xyz"))
    flips = plan(KEY, code_key("AbC123xyz"), encoded.layout)
    assert len(flips) == len(set(flips)) >= MIN_MODULES
    assert not set(flips) & function_modules(encoded.layout.version)
    owner = {
        m: (k, i)
        for k, block in enumerate(encoded.layout.codewords)
        for i, cw in enumerate(block)
        for m in cw
    }
    per_codeword: dict[tuple[int, int], int] = {}
    for m in flips:
        per_codeword[owner[m]] = per_codeword.get(owner[m], 0) + 1
    assert set(per_codeword.values()) == {MODULES_PER_CODEWORD}
    for k, block in enumerate(encoded.layout.blocks):
        used = sum(1 for b, _ in per_codeword if b == k)
        assert 1 <= used <= max(1, int(block.correctable * BUDGET)) < block.correctable


def test_the_plan_is_keyed_per_code_and_per_brand() -> None:
    encoded = qr.encode(LINK.format(serial="AbC123xyz"))
    flips = plan(KEY, code_key("AbC123xyz"), encoded.layout)
    assert plan(KEY, code_key("AbC123xyz"), encoded.layout) == flips
    assert len(set(flips) & set(plan(KEY, code_key("AbC123xyw"), encoded.layout))) < len(flips) / 4
    assert (
        len(set(flips) & set(plan(OTHER_KEY, code_key("AbC123xyz"), encoded.layout)))
        < len(flips) / 4
    )


def test_a_symbol_too_small_for_a_mark_is_refused() -> None:
    small = qr.encode("https://e.x/01/09520123456788/21/1", "L")
    with pytest.raises(MarkTooSmall, match="at least"):
        plan(KEY, code_key("1"), small.layout)
    with pytest.raises(ValueError, match="16 bytes"):
        plan(b"short", code_key("1"), qr.encode(LINK.format(serial="1")).layout)


@pytest.mark.parametrize("serial", [f"S{i:05d}" for i in range(12)])
def test_zxing_reads_a_marked_symbol_as_the_clean_one(serial: str) -> None:
    text = LINK.format(serial=serial) + "&11=" + "260101"[: len(serial) % 7]
    encoded = qr.encode(text)
    marked = qr.marked(encoded, KEY, code_key(serial))
    flipped = sum(
        a != b
        for r, s in zip(encoded.rows, marked.rows, strict=True)
        for a, b in zip(r, s, strict=True)
    )
    assert flipped >= MIN_MODULES
    (found,) = zxingcpp.read_barcodes(picture(marked.rows), text_mode=zxingcpp.TextMode.Plain)
    assert found.text == text
    # zxing reports the share of error correction left unused: the mark spent at most BUDGET.
    assert isinstance(found.extra, dict)
    assert float(found.extra["UEC"]) >= 1 - BUDGET


# -- the rule ---------------------------------------------------------------------------------


def _reading(carried: float, noise_every: int = 0) -> Status:
    """The rule on a clean symbol with the mark of ``carried`` of its marked codewords applied,
    and every ``noise_every``-th other data module flipped."""
    encoded = qr.encode(LINK.format(serial="AbC123xyz"))
    flips = plan(KEY, code_key("AbC123xyz"), encoded.layout)
    groups = [
        [m for m in cw if m in flips]
        for block in encoded.layout.codewords
        for cw in block
        if set(cw) & set(flips)
    ]
    read = apply(encoded.rows, [m for g in groups[: round(len(groups) * carried)] for m in g])
    if noise_every:
        others = [m for b in encoded.layout.codewords for cw in b for m in cw if m not in flips]
        read = apply(read, others[::noise_every])
    return judge(encoded.layout, encoded.rows, read, flips).status


def test_the_rule_on_readings() -> None:
    assert _reading(1.0) is Status.PRESENT
    assert _reading(PRESENT_SCORE) is Status.PRESENT
    assert _reading(PRESENT_SCORE - 0.13) is Status.ABSENT  # one codeword short of 4 in 8
    assert _reading(0.0) is Status.ABSENT
    assert _reading(1.0, noise_every=round(1 / MAX_NOISE) + 1) is Status.PRESENT
    assert _reading(1.0, noise_every=round(1 / MAX_NOISE) - 2) is Status.UNREADABLE
    assert _reading(0.0, noise_every=round(1 / MAX_FOREIGN_NOISE) - 1) is Status.ABSENT


def test_a_reading_off_the_grid_is_unreadable() -> None:
    encoded = qr.encode(LINK.format(serial="AbC123xyz"))
    flips = plan(KEY, code_key("AbC123xyz"), encoded.layout)
    shifted = tuple(
        row[1:] + row[:1] for row in qr.marked(encoded, KEY, code_key("AbC123xyz")).rows
    )
    judgement = judge(encoded.layout, encoded.rows, shifted, flips)
    assert judgement.status is Status.UNREADABLE
    assert judgement.grid < MIN_GRID_AGREEMENT


def test_the_rule_wants_matrices_of_the_symbols_size() -> None:
    encoded = qr.encode(LINK.format(serial="AbC123xyz"))
    with pytest.raises(ValueError, match="matrices"):
        judge(encoded.layout, encoded.rows, encoded.rows[1:], ())


def test_flips_sprayed_over_the_whole_budget_never_forge_a_mark() -> None:
    # A counterfeiter without the key who sprays flips over whole codewords, as many as the
    # symbol still decodes with, hits few keyed modules and raises the noise instead.
    import hashlib

    encoded = qr.encode(LINK.format(serial="AbC123xyz"))
    flips = plan(KEY, code_key("AbC123xyz"), encoded.layout)
    for trial in range(40):
        sprayed: list[tuple[int, int]] = []
        for k, block in enumerate(encoded.layout.codewords):
            budget = encoded.layout.blocks[k].correctable
            for j in range(budget):
                digest = hashlib.sha256(b"%d %d %d" % (trial, k, j)).digest()
                sprayed += block[int.from_bytes(digest[:4], "big") % len(block)]
        judgement = judge(encoded.layout, encoded.rows, apply(encoded.rows, set(sprayed)), flips)
        assert judgement.status is not Status.PRESENT, (trial, judgement)

"""Printing a covertly marked label from the CLI, and the brand keys it is marked with."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from sealmark.covert.reader import check, find_symbol
from sealmark.crypto.covert import CovertKeys
from sealmark.crypto.pins import PinScheme
from sealmark_app.cli.main import main
from tests.unit.test_labels import _RECT, parse_svg

PEPPER = "cli-covert-test-pepper-0123"
LINK = "https://id.sealmark.example/01/09520123456788/10/L1/21/Qx7-Zk2_Aa9?17=271130&8030=" + (
    "AbCdEfGh" * 10 + "Ij0-_9"
)


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # External servers named (never contacted by `label`): secrets come from the environment.
    monkeypatch.setenv("SEALMARK_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("SEALMARK_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("SEALMARK_SECRET_PEPPER", PEPPER)
    monkeypatch.setenv("SEALMARK_KEY_PASSPHRASE", "cli-covert-passphrase")
    monkeypatch.setenv("SEALMARK_DATA_DIR", str(tmp_path / "data"))


def _mark(path: Path, tenant: str) -> str:
    reading = find_symbol(Image.open(path))
    assert reading is not None and reading.text == LINK
    key = CovertKeys(PEPPER.encode()).for_tenant(tenant)
    return check(reading, key, "09520123456788Qx7-Zk2_Aa9").status.value


def test_label_with_a_covert_tenant_is_marked(tmp_path: Path) -> None:
    marked, plain = tmp_path / "marked.png", tmp_path / "plain.png"
    assert (
        main(["label", LINK, "--symbology", "qr", "--covert-tenant", "acme", "--out", str(marked)])
        == 0
    )
    assert main(["label", LINK, "--symbology", "qr", "--out", str(plain)]) == 0
    assert _mark(marked, "acme") == "present"
    assert _mark(marked, "other-brand") == "absent"
    assert _mark(plain, "acme") == "absent"


def test_a_covert_mark_needs_a_qr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    element = "01095201234567881727113021ABC"
    out = tmp_path / "dm.png"
    code = main(
        [
            "label",
            element,
            "--symbology",
            "datamatrix",
            "--covert-tenant",
            "acme",
            "--out",
            str(out),
        ]
    )
    assert code == 2
    assert "covert_key: a covert mark needs a QR label" in capsys.readouterr().err
    assert not out.exists()


def test_covert_keys_are_per_tenant_and_apart_from_pins() -> None:
    keys = CovertKeys(PEPPER.encode())
    acme = keys.for_tenant("acme")
    assert len(acme) == 32 and acme == CovertKeys(PEPPER.encode()).for_tenant("acme")
    assert acme != keys.for_tenant("acme2") != CovertKeys(b"another-pepper-0123").for_tenant("acme")
    assert acme.hex() not in repr(keys) and PEPPER not in repr(keys)
    assert PinScheme(PEPPER.encode()).pin_hash("acme", "1") != acme
    with pytest.raises(ValueError, match="tenant"):
        keys.for_tenant("")
    with pytest.raises(ValueError, match="16 bytes"):
        CovertKeys(b"short")


def test_an_svg_label_carries_the_same_mark(tmp_path: Path) -> None:
    svg = tmp_path / "marked.svg"
    assert (
        main(["label", LINK, "--symbology", "qr", "--covert-tenant", "acme", "--out", str(svg)])
        == 0
    )
    # Draw the path's rectangles (the only shape render_svg emits), 6 px per module.
    root = parse_svg(svg.read_text(encoding="utf-8"))
    _, _, width, height = (float(v) for v in root.get("viewBox", "").split())
    path = root.find("{http://www.w3.org/2000/svg}path")
    assert path is not None
    image = Image.new("L", (round(width * 6), round(height * 6)), 255)
    draw = ImageDraw.Draw(image)
    for x, y, w, h in _RECT.findall(path.get("d", "")):
        x0, y0 = float(x) * 6, float(y) * 6
        draw.rectangle((x0, y0, x0 + int(w) * 6 - 1, y0 + int(h) * 6 - 1), fill=0)
    png = tmp_path / "drawn.png"
    image.save(png)
    assert _mark(png, "acme") == "present"


def test_issue_with_a_covert_tenant_needs_qr_labels(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["issue", "--gtin", "09520123456788", "--lot", "L1", "--expiry", "271130"]
    args += ["--count", "1", "--token", "smk_x_y", "--covert-tenant", "acme"]
    assert main(args) == 2  # refused before any connection: no --labels
    assert "--covert-tenant: a covert mark needs --labels and --symbology qr" in (
        capsys.readouterr().err
    )

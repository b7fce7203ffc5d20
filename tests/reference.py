"""Paths to the official reference data in ../shared/reference (never skipped: a missing
file fails the tests that need it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"


def gs1_vectors() -> dict[str, Any]:
    path = REFERENCE / "gs1-vectors.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"reference vectors missing: {path} (shared/ must sit beside the repo)"
        )
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data

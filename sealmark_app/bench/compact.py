"""Compact-profile MACs (docs/issuer.md, "Compact MAC profile"): what one costs to mint and to
check, next to the Ed25519 signature a signed code costs instead."""

from __future__ import annotations

import time
from collections.abc import Callable

from sealmark.crypto.mac import MacScheme, decode_mac
from sealmark_app.bench.registry import Measurement, benchmark, self_peak_rss_mb

_GTIN = "09520123456788"


@benchmark(
    "compact_mac_per_s",
    baseline="ed25519_sign_per_s",
    description="compact-code MACs minted per second, one core (check_per_s: verified); no bar",
)
def compact_mac_per_s(seconds: float = 2.0) -> Measurement:
    macs = MacScheme(b"bench-mac-secret-0123456789abcdefghij")
    encode = macs.encoder("bench", "01", _GTIN)
    serials = [f"{n:012d}" for n in range(1000)]
    minted = _rate(lambda: [encode(s) for s in serials], len(serials), seconds)
    values = [decode_mac(encode(s)) for s in serials]

    def check() -> None:
        for serial, (key_id, tag) in zip(serials, values, strict=True):
            macs.matches("bench", _GTIN, serial, key_id, tag)

    checked = _rate(check, len(serials), seconds)
    return Measurement(minted, "macs/s", self_peak_rss_mb(), {"check_per_s": round(checked)})


def _rate(batch: Callable[[], object], size: int, seconds: float) -> float:
    batch()  # warm up: the product key derived and cached
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        batch()
        count += size
    return count / (time.perf_counter() - started)

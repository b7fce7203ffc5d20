"""One run issues 1,000,000 codes through gRPC: all unique, every signature verifies with the
exported public key using only `cryptography`, every Digital Link URI and element string
parses with biip to the issued GTIN, serial, lot and expiry. Checked in two worker processes
as the batches stream in."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest
from biip.gs1_digital_link_uris import GS1DigitalLinkURI
from biip.gs1_messages import GS1Message
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sealmark.crypto.signature import canonical_bytes, decode_ai8030
from sealmark.v1 import issuer_pb2
from tests.e2e.conftest import _md

pytestmark = pytest.mark.e2e
TOTAL = 1_000_000


def _check_batch(args: tuple[list[tuple[str, str, str, str]], str, dict[str, bytes]]) -> int:
    """Verify one batch; returns how many codes passed (raises on the first failure)."""
    codes, gtin, keys = args
    public = {k: Ed25519PublicKey.from_public_bytes(v) for k, v in keys.items()}
    for serial, link, element, signature in codes:
        key_id, raw = decode_ai8030(signature)
        public[key_id].verify(raw, canonical_bytes(gtin, serial, "MILLION", "301231", key_id))
        want = {"01": gtin, "10": "MILLION", "21": serial, "17": "301231", "8030": signature}
        got_link = {e.ai.ai: e.value for e in GS1DigitalLinkURI.parse(link).element_strings}
        got_element = {e.ai.ai: e.value for e in GS1Message.parse(element).element_strings}
        if got_link != want or got_element != want:
            raise AssertionError(f"code {serial} parses to {got_link} / {got_element}")
    return len(codes)


@pytest.mark.timeout(1800)
def test_one_million_codes(world: dict[str, Any]) -> None:
    keys = {
        k.key_id: k.public_key
        for k in world["stub"]
        .GetKeySet(issuer_pb2.GetKeySetRequest(), metadata=_md(world["line"]), timeout=10)
        .keys
    }
    request = issuer_pb2.IssueCodesRequest(
        request_id="million-1",
        gtin=world["gtin"],
        lot="MILLION",
        expiry="301231",
        quantity=500_000,
        line_id="line-m",
        work_order="WO-million",
        batch_size=5000,
    )
    serials: set[str] = set()
    checked = 0
    with ProcessPoolExecutor(2) as pool:
        futures = []
        for part in ("million-1", "million-2"):  # two requests: 500,000 is the per-request max
            request.request_id = part
            for response in world["stub"].IssueCodes(
                request, metadata=_md(world["line"]), timeout=900
            ):
                batch = [
                    (c.serial, c.digital_link, c.element_string, c.signature)
                    for c in response.codes
                ]
                serials.update(c.serial for c in response.codes)
                futures.append(pool.submit(_check_batch, (batch, world["gtin"], keys)))
        checked = sum(f.result() for f in futures)
    assert len(serials) == TOTAL
    assert checked == TOTAL

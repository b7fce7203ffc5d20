"""Official reference data the tests check against, vendored with its source and licence
(see README.md in this folder). Nothing in the repository reads outside it."""

from __future__ import annotations

from pathlib import Path

REFERENCE = Path(__file__).resolve().parent
GS1_VECTORS = REFERENCE / "gs1-vectors.json"
EPCIS2 = REFERENCE / "gs1-epcis2"
EPCIS_EVENT_HASH = REFERENCE / "epcis-event-hash"
MERKLE_TESTDATA = REFERENCE / "merkle-rfc6962" / "testdata"
GS1_RESOLVER = REFERENCE / "gs1-resolver"

"""Which of the Verifier's writes are webhook events (:mod:`sealmark.webhooks.events`): the
first genuine scan of a code, found in a scan log batch, and the alerts the brand may
subscribe to. Pure; both storage adapters call it inside the write it reports on."""

from __future__ import annotations

from collections.abc import Sequence

from sealmark.webhooks.events import GENUINE_FIRST_VERDICT, OutboxEvent, first_genuine_scan
from verifier.ports import ScanRow


def first_scan_events(scans: Sequence[ScanRow]) -> list[OutboxEvent]:
    """The events of the batch's first genuine scans: an active scan of one of our codes
    answered ``authentic`` (not seen before). A code scanned so twice (two processes racing
    before either recorded it) gives two equal event ids: the outbox keeps one."""
    return [
        first_genuine_scan(s.tenant_id, s.code_key, s.verification_id, s.region, s.verified_at)
        for s in scans
        if s.verdict == GENUINE_FIRST_VERDICT and s.active and s.tenant_id and s.code_key
    ]

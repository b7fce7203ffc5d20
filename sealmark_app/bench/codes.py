"""Signed Digital Links for filler codes: the codes a bench stores straight in PostgreSQL
(:func:`sealmark_app.bench.suite.store_commissioned_codes`) carry no signature, so to verify
random codes of a large stored set the bench signs the ones it will scan, with the tenant's
own key (the Issuer's, unsealed with the bench passphrase). The Verifier then does for them all
it does for an issued code: the signature, a primary-key read of a row among millions, the
scan state."""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from datetime import date

import psycopg2

from sealmark.crypto.keys import SealedKey, Signer, unseal
from sealmark.crypto.signature import canonical_bytes, encode_ai8030
from sealmark.gs1.dates import format_yymmdd
from sealmark_app.bench.suite import _SECRETS, GTIN, TENANT

FILL_LOT = "FILL"
FILL_EXPIRY = date(2030, 12, 31)  # as store_commissioned_codes stores them
RESOLVER = "id.bench.example"


def filler_serial(number: int, prefix: str = "F") -> str:
    """The serial :func:`~sealmark_app.bench.suite.store_commissioned_codes` gives code
    ``number``."""
    return f"{prefix}{number:013d}"


def tenant_signer(dsn: str) -> Signer:
    """The bench tenant's newest software key, unsealed (the Issuer made it at start)."""
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT key_id, public_key, private_key_pem FROM signing_keys"
            " WHERE tenant_id = %s AND revoked_at IS NULL AND private_key_pem IS NOT NULL"
            " ORDER BY created_at DESC LIMIT 1",
            (TENANT,),
        )
        row = cur.fetchone()
    conn.close()
    if row is None:
        raise RuntimeError("the bench tenant has no software signing key (serve the Issuer)")
    key = SealedKey(row[0], bytes(row[1]), bytes(row[2]))
    return unseal(key, _SECRETS["SEALMARK_KEY_PASSPHRASE"].encode())


def signed_links(
    signer: Signer,
    serials: Sequence[str],
    *,
    gtin: str = GTIN,
    lot: str = FILL_LOT,
    expiry: date = FILL_EXPIRY,
) -> list[str]:
    """The Digital Link of each serial as the Issuer prints it, signed by ``signer``."""
    from issuer.domain.encoding import CodeFormatter

    formatter = CodeFormatter(gtin, lot, expiry, None, RESOLVER)
    yymmdd, key_id = format_yymmdd(expiry), signer.key_id
    return [
        formatter.print(
            serial,
            encode_ai8030(key_id, signer.sign(canonical_bytes(gtin, serial, lot, yymmdd, key_id))),
        ).digital_link
        for serial in serials
    ]


def sample_numbers(
    rng: random.Random, first: int, stop: int, count: int, taken: Collection[int] = ()
) -> list[int]:
    """``count`` distinct numbers drawn uniformly from ``first`` .. ``stop - 1``, none of
    ``taken`` (codes already scanned stay out: the sample's scans are first scans)."""
    if count > stop - first - len(taken):
        raise ValueError(f"cannot draw {count} fresh codes from {first}..{stop - 1}")
    drawn: dict[int, None] = {}
    while len(drawn) < count:
        n = rng.randrange(first, stop)
        if n not in taken:
            drawn[n] = None
    return list(drawn)

"""Build the Issuer's use-case object from the process container (once per process)."""

from __future__ import annotations

from issuer.usecases import Issuer
from sealmark.bootstrap import Container
from sealmark.crypto.pins import PinScheme


def build_issuer(container: Container) -> Issuer:
    """Raises InvalidArgument naming the missing secret when none is configured."""
    return Issuer(
        container.database,
        container.clock,
        container.random_bytes,
        PinScheme(container.secrets.pepper),
        container.secrets.key_passphrase,
        container.settings.guess_bound,
    )
